"""The scheduler: which compute host a server goes to.

:mod:`.hosts` reads the candidate hosts with what is claimed on them,
:mod:`.filters` keeps those that can take the request, :mod:`.weighers`
orders them, and :mod:`.claims` takes the resources on the chosen host
atomically (a claim that would overcommit fails, and the next host is tried).
"""
