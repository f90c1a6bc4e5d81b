"""The S3 API on a listener of its own, in front of the Swift pipeline.

As Swift's ``s3api`` middleware does, every S3 request becomes one or more
Swift requests through the same pipeline (keystoneauth, SLO, copy ...), as
the user of the EC2 credential that signed it: a bucket is a container of the
credential's project account, an object is an object, a multipart upload is
segments in ``<bucket>+segments`` and an SLO manifest when completed.

``app`` (ASGI, routing, errors) / ``auth`` (SigV4 over the request) /
``service``-like controllers ``buckets``, ``objects``, ``multipart``,
``multidelete`` / ``request`` (the parsed S3 request and its Swift
sub-requests) / ``sigv4``, ``chunked``, ``xml``, ``errors`` (pure parts).
"""
