"""Import the authors' harmonized Keras networks (.h5) into PyTorch, without TensorFlow."""
