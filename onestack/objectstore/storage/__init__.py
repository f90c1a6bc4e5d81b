"""The storage node: object, container and account servers over local devices."""
