## Base class of the GDScript tests: each `test_*` method is one test (it may `await`).
## Assertions record failures instead of aborting, so one run reports every broken expectation.
extends RefCounted

var failures: PackedStringArray = []
## The SceneTree running the tests, for tests that need nodes in the tree or frames to pass.
var tree: SceneTree


func check(condition: bool, message: String) -> bool:
	if not condition:
		failures.append(message)
	return condition


func check_eq(actual: Variant, expected: Variant, message: String = "") -> bool:
	return check(
		typeof(actual) == typeof(expected) and actual == expected,
		"%s: expected %s (%s), got %s (%s)" % [message, var_to_str(expected), type_string(typeof(expected)), var_to_str(actual), type_string(typeof(actual))]
	)


func check_near(actual: float, expected: float, tolerance: float, message: String = "") -> bool:
	return check(absf(actual - expected) <= tolerance, "%s: expected %f ± %f, got %f" % [message, expected, tolerance, actual])


## Waits for `frames` process frames.
func frames(count: int = 1) -> void:
	for i in count:
		await tree.process_frame


## Waits up to `timeout` seconds for `predicate` to become true, polling each frame.
func wait_until(predicate: Callable, timeout: float = 5.0) -> bool:
	var deadline := Time.get_ticks_msec() + int(timeout * 1000.0)
	while Time.get_ticks_msec() < deadline:
		if predicate.call():
			return true
		await tree.process_frame
	return predicate.call()
