"""The Swift proxy: account, container and object controllers over the ring."""
