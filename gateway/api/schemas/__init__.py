"""Request and response models of the API, apart from the storage models."""
