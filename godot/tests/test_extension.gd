## The Rust extension is loaded and its classes work from GDScript.
extends "res://tests/nexus_test.gd"


func test_extension_classes_are_registered() -> void:
	check(ClassDB.class_exists("NexusInfo"), "NexusInfo is registered")


func test_rust_methods_return_results() -> void:
	var info: RefCounted = ClassDB.instantiate("NexusInfo")
	check(info != null, "NexusInfo instantiates")
	check_eq(info.version(), "0.1.0", "version")
	check(info.is_valid_event_type("physics:world_state:v1:stream"), "a stream type is valid")
	check(not info.is_valid_event_type("physics:world_state:stream"), "three parts are invalid")
	check(not info.is_valid_event_type("physics:x:vx:stream"), "a version needs a number")
