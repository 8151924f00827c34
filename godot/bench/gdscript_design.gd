## Benchmark baseline (a): the seed design's GDScript PhysicsWorldServer on Godot's own physics.
## 1,000 awake boxes; every physics tick builds the design's world_state Dictionary and
## JSON-serialises it once (the same text would go to every client).
## Run with `--fixed-fps 60` so frames run back to back: wall time per frame is main-thread time.
## Prints one line `BENCH_RESULT {json}`.
extends SceneTree

const BOXES := 1000
const WARMUP_TICKS := 60
const MEASURED_TICKS := 300

var bodies: Array[RigidBody3D] = []
var tick := 0
var frame_started_usec := 0
var frame_usec_total := 0
var dict_usec_total := 0
var json_usec_total := 0
var bytes_total := 0


func _initialize() -> void:
	var root3d := Node3D.new()
	root.add_child(root3d)
	var floor_body := StaticBody3D.new()
	var floor_shape := CollisionShape3D.new()
	var floor_box := BoxShape3D.new()
	floor_box.size = Vector3(200, 1, 200)
	floor_shape.shape = floor_box
	floor_body.add_child(floor_shape)
	floor_body.position = Vector3(0, -0.5, 0)
	root3d.add_child(floor_body)
	var box := BoxShape3D.new()
	box.size = Vector3.ONE
	for i in BOXES:
		var body := RigidBody3D.new()
		body.can_sleep = false
		var shape := CollisionShape3D.new()
		shape.shape = box
		body.add_child(shape)
		# A 10 x 10 grid of towers, 10 high, with gaps so the boxes tumble and stay busy.
		body.position = Vector3((i % 10) * 1.5 - 7.0, 1.0 + (i / 100) * 1.6, ((i / 10) % 10) * 1.5 - 7.0)
		body.set_meta("id", i)
		root3d.add_child(body)
		bodies.append(body)


func _physics_process(_delta: float) -> bool:
	var now := Time.get_ticks_usec()
	if tick > WARMUP_TICKS and frame_started_usec > 0:
		frame_usec_total += now - frame_started_usec
	frame_started_usec = now
	tick += 1
	# Keep the scene busy: kick a few boxes each tick, as players would.
	for k in 5:
		bodies[(tick * 7 + k * 131) % BOXES].apply_central_impulse(Vector3(0.5, 2.0, 0.3))

	var t0 := Time.get_ticks_usec()
	var world_state := {
		"timestamp": Time.get_unix_time_from_system(),
		"objects": _get_all_object_states(),
		"physics": {"gravity": ProjectSettings.get_setting("physics/3d/default_gravity"), "tick": tick},
		"environment": {"weather": "clear", "time_of_day": 12.0},
	}
	var t1 := Time.get_ticks_usec()
	var event := {
		"type": "physics:world_state:v1:stream",
		"payload": world_state,
		"metadata": {"campaign_id": "0", "entity_type": "physics_server", "client_type": "godot"},
	}
	var text := JSON.stringify(event)
	var t2 := Time.get_ticks_usec()
	if tick > WARMUP_TICKS:
		dict_usec_total += t1 - t0
		json_usec_total += t2 - t1
		bytes_total += text.length()
	if tick > WARMUP_TICKS + MEASURED_TICKS:
		var n := float(MEASURED_TICKS)
		var result := {
			"boxes": BOXES,
			"ticks": MEASURED_TICKS,
			"frame_ms": frame_usec_total / n / 1000.0,
			"dict_ms": dict_usec_total / n / 1000.0,
			"json_ms": json_usec_total / n / 1000.0,
			"snapshot_bytes": bytes_total / n,
			"bytes_per_client_per_s": bytes_total / n * 60.0,
		}
		result["physics_and_engine_ms"] = result["frame_ms"] - result["dict_ms"] - result["json_ms"]
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
