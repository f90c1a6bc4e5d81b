"""Background work of the object store: replicator, updater, expirer, auditor.

Each is a plain object with a ``run()`` that does one pass (tests call it
directly); ``objectstore/agent.py`` schedules them as the cloud's tasks.
"""
