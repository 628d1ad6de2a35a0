package respond

// SetTestHook sets the hook called between intent and outcome (see
// testHook).
func SetTestHook(f func(stage string)) { testHook = f }
