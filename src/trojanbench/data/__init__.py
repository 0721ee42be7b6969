"""A user's data, offered through the same interfaces as the built-in world (see :mod:`.folder`)."""

from .folder import DEFAULT_IMAGE_SIZE, SPLITS, ImageFolderData, Labelled, split_of

__all__ = ["DEFAULT_IMAGE_SIZE", "SPLITS", "ImageFolderData", "Labelled", "split_of"]
