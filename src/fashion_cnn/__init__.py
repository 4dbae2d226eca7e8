"""fashion-cnn: a clothing-image classifier trained on Fashion-MNIST."""

__version__ = "0.1.0"
