"""One small module per model format, each a :class:`~.base.ModelFormat` object;
:data:`brittle.loading.loaders.MODEL_FORMATS` lists them."""
