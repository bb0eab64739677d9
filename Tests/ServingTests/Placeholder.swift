// ServingTests: the target's tests land here.
