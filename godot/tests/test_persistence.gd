## PhysicsWorldServer persistence: save, then a new world on the same data directory loads it.
extends "res://tests/nexus_test.gd"

var root: Node3D
var data_dir := ""


func after_each() -> void:
	if root != null:
		root.queue_free()
		root = null
		await frames(2)
	if not data_dir.is_empty():
		for file in DirAccess.get_files_at(data_dir.path_join("campaigns")):
			DirAccess.remove_absolute(data_dir.path_join("campaigns").path_join(file))
		DirAccess.remove_absolute(data_dir.path_join("campaigns"))
		DirAccess.remove_absolute(data_dir)


func _world(dir: String) -> PhysicsWorldServer:
	root = Node3D.new()
	var server := PhysicsWorldServer.new()
	server.offline = true
	# One test gives an unusable folder on purpose: report it, do not end the test run.
	server.quit_on_failure = false
	server.campaign_id = "persisted"
	server.data_dir = dir
	server.allow_command_line = false
	var crate := NetworkedBody.new()
	crate.name = "Crate"
	crate.position = Vector3(2, 0.5, 0)
	crate.body_type = 2
	server.add_child(crate)
	root.add_child(server)
	tree.root.add_child(root)
	return server


func test_a_saved_world_is_loaded_again() -> void:
	data_dir = OS.get_user_data_dir().path_join("test-persistence-%d" % Time.get_ticks_usec())
	var server := _world(data_dir)
	await frames(1)
	check_eq(server.get_persistence_status()["enabled"], true, "persistence is on")
	var saved := []
	server.world_saved.connect(func(tick: int, rows: int) -> void: saved.append([tick, rows]))
	var id := server.spawn_object({"kind": "static", "shape": {"type": "sphere", "radius": 0.5}, "position": [5, 1, 5], "properties": {"name": "keepsake"}})
	server.step_ticks(10)
	check(server.save_now(), "save_now succeeds")
	# The saver reports from its own thread; the signal follows within a tick or two.
	check(await wait_until(func() -> bool: return saved.size() >= 1, 5.0), "world_saved fired")
	var status := server.get_persistence_status()
	check(status["saves"] >= 1, "saves counted: %s" % status)
	check(status["last_saved_tick"] >= 10, "the save is at tick 10 or later: %s" % status)
	var crate_id: int = server.get_node("Crate").object_id
	root.queue_free()
	root = null
	await frames(2)

	var again := _world(data_dir)
	var loaded := []
	again.world_loaded.connect(func(tick: int, objects: int) -> void: loaded.append([tick, objects]))
	check(await wait_until(func() -> bool: return loaded.size() == 1, 5.0), "world_loaded fired")
	check(again.get_tick() >= 10, "the world resumes from its saved tick")
	var keepsake := again.get_object_state(id)
	check(not keepsake.is_empty(), "the spawned object is back under its id")
	if not keepsake.is_empty():
		check_eq(keepsake["properties"]["name"], "keepsake", "with its properties")
	check_eq(again.get_node("Crate").object_id, crate_id, "the scene's body is bound to its restored object")


func test_an_unusable_data_directory_refuses_to_start() -> void:
	var server := _world("/proc/definitely/not/writable")
	await frames(1)
	check(not server.is_running(), "the world does not run without its store (it would lose data)")
