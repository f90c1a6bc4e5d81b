"""Where image data lives: the ``Store`` interface and its backends."""

from onestack.image.stores.base import Store, StoreWriter
from onestack.image.stores.file import FileStore

__all__ = ["FileStore", "Store", "StoreWriter"]
