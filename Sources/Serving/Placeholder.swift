// Serving: placeholder until the target's first real file lands; delete when it does.
