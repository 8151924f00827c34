## A world that cannot serve says why (naming the node and the path) instead of running offline
## without a word. These tests turn `quit_on_failure` off: in this headless run it would end the
## test process, which is exactly what it does in a headless server (tested end to end).
extends "res://tests/nexus_test.gd"

const WRONG_PATH_SCENE := "user://nexus_test_wrong_gateway_path.tscn"

var root: Node


func after_each() -> void:
	if root != null:
		root.queue_free()
		root = null
		await frames(2)


func test_a_world_without_a_gateway_refuses_to_start() -> void:
	root = Node3D.new()
	var server := PhysicsWorldServer.new()
	server.name = "Lonely"
	server.autostart = false
	server.quit_on_failure = false
	root.add_child(server)
	tree.root.add_child(root)
	check(not server.start(), "start() refuses a world no client could join")
	check(not server.is_running(), "the world does not run")
	var error: String = server.get_start_error()
	check(error.contains("Lonely"), "the error names the node: %s" % error)
	check(error.contains("offline"), "the error says how to run without clients: %s" % error)
	server.offline = true
	check(server.start(), "with offline on the same world starts")
	check_eq(server.get_start_error(), "", "no error after a good start")


func test_the_configuration_check_reports_a_missing_gateway() -> void:
	var server := PhysicsWorldServer.new()
	var warnings: PackedStringArray = server.check_configuration()
	check_eq(warnings.size(), 1, "one warning without a gateway")
	check(warnings.size() == 1 and warnings[0].contains("gateway"), "it is about the gateway: %s" % [warnings])
	server.offline = true
	check_eq(server.check_configuration().size(), 0, "an offline world needs no gateway")
	server.offline = false
	var gateway := NexusGateway.new()
	server.gateway = gateway
	check_eq(server.check_configuration().size(), 0, "a world with a gateway is fine")
	server.free()
	gateway.free()


func test_a_wrong_gateway_path_in_the_scene_is_named() -> void:
	# Written as a user's scene would be: the path names a node that does not exist.
	var text := """[gd_scene format=3]

[node name="Root" type="Node3D"]

[node name="Gateway" type="NexusGateway" parent="."]
autostart = false

[node name="World" type="PhysicsWorldServer" parent="." node_paths=PackedStringArray("gateway")]
gateway = NodePath("../Gatewey")
autostart = false
quit_on_failure = false
"""
	var file := FileAccess.open(WRONG_PATH_SCENE, FileAccess.WRITE)
	file.store_string(text)
	file.close()
	var scene: PackedScene = ResourceLoader.load(WRONG_PATH_SCENE, "", ResourceLoader.CACHE_MODE_IGNORE)
	check(scene != null, "the scene loads")
	if scene == null:
		return
	root = scene.instantiate()
	tree.root.add_child(root)
	var server: PhysicsWorldServer = root.get_node("World")
	check(server.gateway == null, "the path resolves to nothing")
	check(not server.start(), "the world refuses to start")
	var error: String = server.get_start_error()
	check(error.contains("../Gatewey"), "the error names the scene's path: %s" % error)
	check(error.contains("World"), "and the world node: %s" % error)
	DirAccess.remove_absolute(ProjectSettings.globalize_path(WRONG_PATH_SCENE))
