// TensorTests: the target's tests land here.
