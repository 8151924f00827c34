## Side (b) of scripts/peer-bench, the server: the same N boxes and motion (bench/peer/motion.gd)
## on our nodes, PhysicsWorldServer + NetworkedBody + NexusGateway (development mode, WebSocket
## only). The boxes slide on a frictionless floor (gravity stays on for the bots' avatars, which
## appear 30 m beside the box field, inside every client's view); every UPDATE_TICKS ticks each box
## gets the impulse that turns its current velocity into the motion's.
##
## User args: --port=P --bodies=N [--snapshot-rate=20] [--clients-hint=M]
## Prints `NEXUS_PEER_READY port=P` once the campaign is open, then once a second
## `NEXUS_PEER clients=K ticks=T bytes_out=B state_bytes_out=S dropped=D encode_s=E` (the
## gateway's own counters for the campaign). Runs until killed.
extends SceneTree

const Motion := preload("res://peer/motion.gd")

var server: PhysicsWorldServer
var gateway: NexusGateway
var boxes: PackedInt64Array = []
var bodies := 100
var ticks := 0
var announced := false
var last_report_msec := 0


func _initialize() -> void:
	var port := 9300
	var snapshot_rate := 20
	var clients_hint := 1000
	for arg in OS.get_cmdline_user_args():
		var kv := arg.trim_prefix("--").split("=", true, 1)
		if kv.size() != 2:
			continue
		match kv[0]:
			"port": port = int(kv[1])
			"bodies": bodies = int(kv[1])
			"snapshot-rate": snapshot_rate = int(kv[1])
			"clients-hint": clients_hint = int(kv[1])
	var world := Node3D.new()
	gateway = NexusGateway.new()
	gateway.port = port
	gateway.development_mode = true
	gateway.allow_command_line = false
	# (Older builds lack some settings: set what exists.)
	for setting in [["webrtc_enabled", false], ["resume_grace_seconds", 0.0]]:
		if setting[0] in gateway:
			gateway.set(setting[0], setting[1])
	# Every bot comes from 127.0.0.1.
	gateway.max_connections_per_address = clients_hint + 64
	gateway.max_connections = clients_hint + 64
	world.add_child(gateway)
	server = PhysicsWorldServer.new()
	server.campaign_id = "peer"
	server.snapshot_rate = snapshot_rate
	server.gateway = gateway
	var half := (Motion.columns(bodies) - 1) * Motion.SPACING * 0.5
	server.spawn_point = Vector3(0, 1, -(half + Motion.RADIUS + 30.0))
	var floor_body := NetworkedBody.new()
	floor_body.body_type = 2
	floor_body.size = Vector3(400, 1, 400)
	floor_body.position = Vector3(0, -0.5, 0)
	floor_body.friction = 0.0
	server.add_child(floor_body)
	for i in bodies:
		var body := NetworkedBody.new()
		body.position = Motion.start(i, bodies)
		body.mass = 1.0
		body.friction = 0.0
		server.add_child(body)
	world.add_child(server)
	root.add_child(world)


func _physics_process(_delta: float) -> bool:
	if boxes.is_empty():
		if not server.is_running():
			return false
		for node in server.get_children():
			if node is NetworkedBody and node.body_type == 0:
				boxes.append(node.object_id)
	if ticks % Motion.UPDATE_TICKS == 0:
		for i in boxes.size():
			var state := server.get_object_state(boxes[i])
			var v: Variant = state.get("velocity", Vector3.ZERO)
			var now := Vector3(v[0], v[1], v[2]) if v is Array or v is PackedFloat32Array or v is PackedFloat64Array else v as Vector3
			server.apply_impulse(boxes[i], Motion.velocity(i, ticks) - now)
	ticks += 1
	return false


func _process(_delta: float) -> bool:
	if not server.is_running():
		return false
	if not announced:
		announced = true
		print("NEXUS_PEER_READY port=%d bodies=%d" % [gateway.port, bodies])
	var now := Time.get_ticks_msec()
	if now - last_report_msec >= 1000:
		last_report_msec = now
		var metrics: Dictionary = gateway.get_metrics()
		var line := "NEXUS_PEER clients=%d ticks=%d" % [server.get_clients().size(), ticks]
		for campaign in metrics["campaigns"]:
			if campaign["campaign_id"] == "peer":
				line += " bytes_out=%d state_bytes_out=%d" % [campaign["bytes_out"], campaign["state_bytes_out"]]
		line += " dropped=%d encode_s=%.4f" % [metrics["state_updates_dropped"], metrics["state_encode_seconds"]]
		if not boxes.is_empty():
			var p := server.get_object_position(boxes[0])
			line += " box0=%.2f,%.2f,%.2f" % [p.x, p.y, p.z]
		print(line)
	return false
