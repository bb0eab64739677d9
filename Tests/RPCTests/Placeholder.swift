// RPCTests: the target's tests land here.
