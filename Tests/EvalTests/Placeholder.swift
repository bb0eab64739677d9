// EvalTests: the target's tests land here.
