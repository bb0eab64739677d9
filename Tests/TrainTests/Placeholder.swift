// TrainTests: the target's tests land here.
