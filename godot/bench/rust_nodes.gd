## Benchmark side (b): the same 1,000 boxes on our Rust nodes (PhysicsWorldServer + NexusGateway),
## with clients subscribed over real sockets (started by scripts/godot-bench). Waits for
## `--clients=N` clients, measures, prints `BENCH_RESULT {json}` and quits.
## User args: --port=P --clients=N [--snapshot-rate=60]
extends SceneTree

const Common := preload("res://bench/bench_common.gd")

var common := Common.new()
var server: PhysicsWorldServer
var gateway: NexusGateway
var boxes: PackedInt64Array = []
var wanted_clients := 100
var measuring := false
var bytes_at_start := 0
var state_bytes_at_start := 0
var encode_seconds_at_start := 0.0
var states_encoded_at_start := 0
var clients_at_start := 0
var usec_at_start := 0
var started_waiting_msec := Time.get_ticks_msec()


func _initialize() -> void:
	var port := 9091
	var snapshot_rate := 20
	for arg in OS.get_cmdline_user_args():
		if arg.begins_with("--port="):
			port = int(arg.trim_prefix("--port="))
		elif arg.begins_with("--clients="):
			wanted_clients = int(arg.trim_prefix("--clients="))
		elif arg.begins_with("--snapshot-rate="):
			snapshot_rate = int(arg.trim_prefix("--snapshot-rate="))
	var world := Node3D.new()
	gateway = NexusGateway.new()
	gateway.port = port
	gateway.development_mode = true
	gateway.allow_command_line = false
	# Every bot comes from 127.0.0.1.
	gateway.max_connections_per_address = wanted_clients + 16
	world.add_child(gateway)
	server = PhysicsWorldServer.new()
	server.campaign_id = "bench"
	server.snapshot_rate = snapshot_rate
	server.gateway = gateway
	# Side (a) has no avatars: spawn ours beside the box field, not inside it (bots still walk).
	server.spawn_point = Vector3(0, 1, 40)
	var floor_body := NetworkedBody.new()
	floor_body.body_type = 2
	floor_body.size = Vector3(200, 1, 200)
	floor_body.position = Vector3(0, -0.5, 0)
	server.add_child(floor_body)
	for i in Common.BOXES:
		var body := NetworkedBody.new()
		body.position = Common.box_position(i)
		server.add_child(body)
	world.add_child(server)
	root.add_child(world)


func _physics_process(_delta: float) -> bool:
	if boxes.is_empty() and server.is_running():
		for node in server.get_children():
			if node is NetworkedBody and node.body_type == 0:
				boxes.append(node.object_id)
	if not measuring:
		return false
	common.on_physics()
	for i in Common.kicked(common.ticks):
		server.apply_impulse(boxes[i], Vector3(0.5, 2.0, 0.3))
	return false


func _process(_delta: float) -> bool:
	if not measuring:
		if server.get_clients().size() >= wanted_clients:
			_start_measuring()
			print("BENCH_MEASURING with %d clients" % server.get_clients().size())
		elif Time.get_ticks_msec() - started_waiting_msec > 60000:
			if server.get_clients().is_empty():
				printerr("BENCH_ERROR no client joined")
				quit(1)
			# Measure with those who made it; the result says how many.
			_start_measuring()
		return false
	common.on_process()
	if common.done():
		var seconds := (Time.get_ticks_usec() - usec_at_start) / 1e6
		var clients := mini(clients_at_start, server.get_clients().size())
		var result := common.summary()
		result["side"] = "rust_nodes"
		result["clients"] = clients
		result["bytes_per_client_per_s"] = (_bytes_out() - bytes_at_start) / float(maxi(clients, 1)) / seconds
		result["state_bytes_per_client_per_s"] = (_bytes_out("state_bytes_out") - state_bytes_at_start) / float(maxi(clients, 1)) / seconds
		var state := server.get_world_state(false)
		result["awake_bodies_at_end"] = state["physics"]["awake_count"]
		var metrics: Dictionary = gateway.get_metrics()
		result["state_updates_dropped"] = metrics["state_updates_dropped"]
		# Per-client state encoding runs on the gateway's threads, beside the main thread.
		result["gateway_encode_ms_per_s"] = (metrics["state_encode_seconds"] - encode_seconds_at_start) * 1000.0 / seconds
		result["states_encoded_per_s"] = (metrics["states_encoded"] - states_encoded_at_start) / seconds
		print("BENCH_RESULT ", JSON.stringify(result))
		return true
	return false


func _start_measuring() -> void:
	measuring = true
	clients_at_start = server.get_clients().size()
	bytes_at_start = _bytes_out()
	state_bytes_at_start = _bytes_out("state_bytes_out")
	var metrics: Dictionary = gateway.get_metrics()
	encode_seconds_at_start = metrics["state_encode_seconds"]
	states_encoded_at_start = metrics["states_encoded"]
	usec_at_start = Time.get_ticks_usec()


## Bytes sent to the campaign's clients: all of them, or one counter ("state_bytes_out").
func _bytes_out(counter := "bytes_out") -> int:
	for campaign in gateway.get_metrics()["campaigns"]:
		if campaign["campaign_id"] == "bench":
			return campaign[counter]
	return 0
