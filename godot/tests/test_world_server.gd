## PhysicsWorldServer and NetworkedBody in a real scene tree (no gateway: the world runs offline).
extends "res://tests/nexus_test.gd"

var root: Node3D


func _make_world(extra: Callable = Callable()) -> PhysicsWorldServer:
	root = Node3D.new()
	var server := PhysicsWorldServer.new()
	server.offline = true
	server.name = "World"
	root.add_child(server)
	if extra.is_valid():
		extra.call(server)
	tree.root.add_child(root)
	return server


func after_each() -> void:
	if root != null:
		root.queue_free()
		root = null
		await frames(2)


func _box(name: String, position: Vector3, body_type := 0) -> NetworkedBody:
	var body := NetworkedBody.new()
	body.name = name
	body.position = position
	body.body_type = body_type
	return body


func test_properties_have_inspector_defaults() -> void:
	var server := PhysicsWorldServer.new()
	check_eq(server.campaign_id, "0", "campaign_id")
	check_eq(server.offline, false, "a world serves clients unless told to run offline")
	check_eq(server.quit_on_failure, true, "quit_on_failure")
	check_eq(server.tick_rate, 60, "tick_rate")
	check_eq(server.snapshot_rate, 20, "snapshot_rate")
	check_eq(server.gravity, Vector3(0, -9.81, 0), "gravity")
	check(not server.is_running(), "not running before entering the tree")
	var names := []
	for property in server.get_property_list():
		names.append(property["name"])
	for wanted in ["campaign_id", "tick_rate", "snapshot_rate", "gravity", "seed", "spawn_point", "gateway", "offline", "quit_on_failure", "autostart"]:
		check(wanted in names, "exported property %s" % wanted)
	server.free()


func test_scene_bodies_become_world_objects() -> void:
	var server := _make_world(func(s: PhysicsWorldServer) -> void:
		s.add_child(_box("Floor", Vector3(0, -0.5, 0), 2))
		s.get_node("Floor").size = Vector3(40, 1, 40)
		s.add_child(_box("Crate", Vector3(1, 3, 2))))
	await frames(1)
	check(server.is_running(), "the world starts when ready")
	check_eq(server.get_object_count(), 2, "both bodies are objects")
	var crate: NetworkedBody = server.get_node("Crate")
	check(crate.object_id >= 0, "the body knows its object id")
	var state := server.get_world_state(false)
	for key in ["timestamp", "tick", "objects", "physics", "environment"]:
		check(state.has(key), "world state has %s" % key)
	check_near(state["timestamp"], Time.get_unix_time_from_system(), 5.0, "the state's timestamp is the host's Unix time")
	var found := false
	for object in state["objects"]:
		if object["id"] == crate.object_id:
			found = true
			check_near(object["position"][0], 1.0, 1e-4, "x of the crate in the world state")
			# Physics frames may have passed since the start (several on a busy machine): the
			# crate has fallen freely for at most the ticks the world ran.
			var seconds: float = (int(state["tick"]) + 1) / 60.0
			var y: float = object["position"][1]
			check(y <= 3.0 + 1e-4 and y >= 3.0 - 0.5 * 9.81 * seconds * seconds - 0.01,
				"y of the crate in the world state: %f after %d ticks" % [y, state["tick"]])
			check_eq(object["properties"]["name"], "Crate", "the node name travels as a property")
	check(found, "the crate is in the world state")


func test_body_transform_follows_the_simulation() -> void:
	var server := _make_world(func(s: PhysicsWorldServer) -> void:
		s.add_child(_box("Crate", Vector3(0, 5, 0))))
	await frames(1)
	var crate: NetworkedBody = server.get_node("Crate")
	server.step_ticks(30)
	check(crate.global_position.y < 4.5, "the crate fell: y = %f" % crate.global_position.y)
	check_near(crate.global_position.y, server.get_object_position(crate.object_id).y, 1e-4, "node and world agree")


func test_spawn_and_remove_emit_signals() -> void:
	var server := _make_world()
	await frames(1)
	var added := []
	var removed := []
	server.object_added.connect(func(id: int, state: Dictionary) -> void: added.append([id, state]))
	server.object_removed.connect(func(id: int, reason: String) -> void: removed.append([id, reason]))
	var id := server.spawn_object({"kind": "dynamic", "shape": {"type": "sphere", "radius": 0.5}, "position": [0, 2, 0]})
	check(id >= 0, "spawn_object returns an id")
	server.step_ticks(1)
	await frames(1)
	check_eq(added.size(), 1, "object_added fired once")
	if added.size() == 1:
		check_eq(added[0][0], id, "object_added carries the id")
		check_eq(added[0][1]["shape"]["type"], "sphere", "object_added carries the shape")
	check(server.apply_impulse(id, Vector3(0, 5, 0)), "impulse on a dynamic body")
	check(server.remove_object(id), "remove_object")
	check(not server.remove_object(id), "removing twice fails")
	server.step_ticks(1)
	await frames(1)
	check_eq(removed.size(), 1, "object_removed fired once")
	check_eq(server.get_object_state(id), {}, "no state for a removed object")


func test_bad_descriptions_are_refused_without_crashing() -> void:
	var server := _make_world()
	await frames(1)
	check_eq(server.spawn_object({"kind": "dynamic"}), -1, "a description without a shape")
	check_eq(server.spawn_object({"kind": "wobbly", "shape": {"type": "sphere", "radius": 1}, "position": [0, 0, 0]}), -1, "an unknown kind")
	check_eq(server.spawn_object({"kind": "dynamic", "shape": {"type": "sphere", "radius": -1}, "position": [0, 0, 0]}), -1, "a negative radius")
	check(server.is_running(), "the world carries on")


func test_interest_query_finds_nearby_objects() -> void:
	var server := _make_world(func(s: PhysicsWorldServer) -> void:
		s.add_child(_box("Near", Vector3(1, 0.5, 0), 2))
		s.add_child(_box("Far", Vector3(200, 0.5, 0), 2)))
	await frames(1)
	var near := server.get_objects_within(Vector3.ZERO, 10.0)
	check_eq(near.size(), 1, "one object within 10 m")
	if near.size() == 1:
		check_eq(near[0], server.get_node("Near").object_id, "the near one")


func test_tick_stats_are_signalled_every_second() -> void:
	var server := _make_world()
	var stats := []
	server.tick_stats.connect(func(tick: int, mean: int, max_usec: int, objects: int, clients: int) -> void: stats.append([tick, mean, max_usec]))
	await frames(1)
	server.step_ticks(60)
	await frames(1)
	check_eq(stats.size(), 1, "one tick_stats after 60 ticks")
	if stats.size() == 1:
		check_eq(stats[0][0], 60, "the tick")
		check(stats[0][1] >= 0 and stats[0][2] >= stats[0][1], "max is at least the mean")
