"""A user's data, offered through the same interfaces as the built-in world (see :mod:`.folder`)."""

from .folder import SPLITS, ImageFolderData, Labelled, split_of

__all__ = ["SPLITS", "ImageFolderData", "Labelled", "split_of"]
