"""Metadata definitions catalog (Glance's ``/v2/metadefs``): namespaces and
their objects, properties, tags and resource type associations.

Reads follow namespace visibility (public, or owned by the caller's project,
or admin); every change needs the ``metadef_admin`` rule (admin), as Glance's
defaults say. ``namespaces`` has the namespaces themselves, ``contents`` what
a namespace holds, ``_common`` their shared views, access checks and input
checks; the JSON schemas are in ``image.metadef_schemas``.
"""
