## Benchmark side (a): the seed design's GDScript PhysicsWorldServer on Godot's own physics.
## 1,000 awake boxes; every tick builds the design's world_state Dictionary and JSON-serialises it
## once (the same text would go to every client). Prints `BENCH_RESULT {json}`.
extends SceneTree

const Common := preload("res://bench/bench_common.gd")

var common := Common.new()
var bodies: Array[RigidBody3D] = []
var dict_usec := 0
var json_usec := 0
var bytes := 0
var measured := 0


func _initialize() -> void:
	var world := Node3D.new()
	root.add_child(world)
	var floor_body := StaticBody3D.new()
	var floor_shape := CollisionShape3D.new()
	var floor_box := BoxShape3D.new()
	floor_box.size = Vector3(200, 1, 200)
	floor_shape.shape = floor_box
	floor_body.add_child(floor_shape)
	floor_body.position = Vector3(0, -0.5, 0)
	world.add_child(floor_body)
	var box := BoxShape3D.new()
	box.size = Vector3.ONE
	for i in Common.BOXES:
		var body := RigidBody3D.new()
		body.can_sleep = false
		var shape := CollisionShape3D.new()
		shape.shape = box
		body.add_child(shape)
		body.position = Common.box_position(i)
		body.set_meta("id", i)
		world.add_child(body)
		bodies.append(body)


func _physics_process(_delta: float) -> bool:
	common.on_physics()
	for i in Common.kicked(common.ticks):
		bodies[i].apply_central_impulse(Vector3(0.5, 2.0, 0.3))
	var t0 := Time.get_ticks_usec()
	var world_state := {
		"timestamp": Time.get_unix_time_from_system(),
		"objects": _get_all_object_states(),
		"physics": {"gravity": ProjectSettings.get_setting("physics/3d/default_gravity"), "tick": common.ticks},
		"environment": {"weather": "clear", "time_of_day": 12.0},
	}
	var t1 := Time.get_ticks_usec()
	var text := JSON.stringify({
		"type": "physics:world_state:v1:stream",
		"payload": world_state,
		"metadata": {"campaign_id": "0", "entity_type": "physics_server", "client_type": "godot"},
	})
	var t2 := Time.get_ticks_usec()
	if common.ticks > Common.WARMUP_TICKS:
		dict_usec += t1 - t0
		json_usec += t2 - t1
		bytes += text.length()
		measured += 1
	return false


func _process(_delta: float) -> bool:
	common.on_process()
	if common.done():
		var result := common.summary()
		result["side"] = "gdscript_design"
		result["dict_ms_mean"] = dict_usec / float(measured) / 1000.0
		result["json_ms_mean"] = json_usec / float(measured) / 1000.0
		result["snapshot_bytes"] = bytes / float(measured)
		# The design sends the same snapshot to every client, every tick.
		result["bytes_per_client_per_s"] = bytes / float(measured) * 60.0
		print("BENCH_RESULT ", JSON.stringify(result))
		return true
	return false


func _get_all_object_states() -> Dictionary:
	var objects := {}
	for body in bodies:
		# As the design writes it: Godot values straight into the Dictionary.
		objects[str(body.get_meta("id"))] = {
			"id": body.get_meta("id"),
			"position": body.position,
			"rotation": body.quaternion,
			"velocity": body.linear_velocity,
			"angular_velocity": body.angular_velocity,
			"properties": {"type": "box"},
		}
	return objects
