// ModelTests: the target's tests land here.
