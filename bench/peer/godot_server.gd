## Side (a) of scripts/peer-bench, the server: Godot's own high-level multiplayer. N RigidBody3D
## boxes (bench/peer/motion.gd) spawned with a MultiplayerSpawner (custom spawn function) and
## replicated with one MultiplayerSynchronizer each (position + rotation, replication mode
## ALWAYS or ON_CHANGE, every --interval seconds), plus a clock node (server time, for state age).
## Serves WebSocketMultiplayerPeer or ENetMultiplayerPeer on --port.
##
## User args (after `--`): --transport=ws|enet --port=P --bodies=N [--interval=0.05]
##   [--mode=always|on_change] [--max-clients=4095]
## Prints `PEER_SERVER_READY`, then once a second `PEER_SERVER peers=K ticks=T` and, for ENet,
## `enet_sent=BYTES` (the host's total sent payload, ENet's own counter). Runs until killed.
extends SceneTree

const Motion := preload("res://peer/motion.gd")
const Clock := preload("res://peer/clock.gd")

var transport := "ws"
var port := 9200
var bodies := 100
var interval := 0.05
var mode := "always"
var max_clients := 4095
var boxes: Array[RigidBody3D] = []
var clock: Node3D
var ticks := 0
var api := SceneMultiplayer.new()
var peer: MultiplayerPeer
var last_report_msec := 0
var enet_sent := 0


func _initialize() -> void:
	for arg in OS.get_cmdline_user_args():
		var kv := arg.trim_prefix("--").split("=", true, 1)
		if kv.size() != 2:
			continue
		match kv[0]:
			"transport": transport = kv[1]
			"port": port = int(kv[1])
			"bodies": bodies = int(kv[1])
			"interval": interval = float(kv[1])
			"mode": mode = kv[1]
			"max-clients": max_clients = int(kv[1])


## Builds the scene on the first frame: in _initialize the root is not in the tree yet.
func _setup() -> void:
	# The multiplayer root is /root/S on the server and /root/P<i> on each client: the same
	# relative paths on both sides (S/Main/World/...).
	var top := Node.new()
	top.name = "S"
	root.add_child(top)
	var main := Node3D.new()
	main.name = "Main"
	top.add_child(main)
	var world := Node3D.new()
	world.name = "World"
	main.add_child(world)
	var spawner := MultiplayerSpawner.new()
	spawner.name = "Spawner"
	world.add_child(spawner)
	spawner.spawn_path = NodePath("..")
	spawner.spawn_limit = 0
	spawner.spawn_function = _spawn
	set_multiplayer(api, top.get_path())
	# Peers only need the server: no relaying between clients.
	api.server_relay = false
	var error := OK
	if transport == "enet":
		var enet := ENetMultiplayerPeer.new()
		error = enet.create_server(port, max_clients)
		peer = enet
	else:
		var ws := WebSocketMultiplayerPeer.new()
		# Room for a whole join (N spawns) per peer without dropping.
		ws.outbound_buffer_size = 1 << 20
		ws.max_queued_packets = 16384
		# The default 3 s is too short while hundreds of peers connect at once on 2 cores.
		ws.handshake_timeout = 30.0
		error = ws.create_server(port, "127.0.0.1")
		peer = ws
	if error != OK:
		printerr("PEER_SERVER_ERROR cannot listen (%s): %s" % [transport, error_string(error)])
		quit(1)
		return
	api.multiplayer_peer = peer
	for i in bodies:
		boxes.append(spawner.spawn(i))
	clock = spawner.spawn(-1)
	print("PEER_SERVER_READY transport=%s port=%d bodies=%d interval=%.3f mode=%s" % [transport, port, bodies, interval, mode])


## Custom spawn: the same function on both sides (the client's builds plain Node3D boxes).
func _spawn(data: Variant) -> Node:
	var i := int(data)
	var node: Node3D
	if i < 0:
		node = Clock.new()
		node.name = "Clock"
	else:
		var body := RigidBody3D.new()
		body.name = "B%d" % i
		body.gravity_scale = 0.0
		body.can_sleep = false
		body.linear_damp_mode = RigidBody3D.DAMP_MODE_REPLACE
		body.linear_damp = 0.0
		body.angular_damp_mode = RigidBody3D.DAMP_MODE_REPLACE
		body.angular_damp = 0.0
		body.collision_layer = 0
		body.collision_mask = 0
		body.mass = 1.0
		var shape := CollisionShape3D.new()
		var box := BoxShape3D.new()
		box.size = Vector3.ONE
		shape.shape = box
		body.add_child(shape)
		body.position = Motion.start(i, bodies)
		node = body
	node.add_child(synchronizer(i < 0, interval, mode))
	return node


## One synchronizer: position + rotation of a box, or the clock's stamp; spawned with the node.
static func synchronizer(is_clock: bool, every: float, how: String) -> MultiplayerSynchronizer:
	var sync := MultiplayerSynchronizer.new()
	sync.name = "Sync"
	var config := SceneReplicationConfig.new()
	var paths: Array = [NodePath(".:stamp")] if is_clock else [NodePath(".:position"), NodePath(".:rotation")]
	for path in paths:
		config.add_property(path)
		config.property_set_spawn(path, true)
		config.property_set_replication_mode(path,
			SceneReplicationConfig.REPLICATION_MODE_ON_CHANGE if how == "on_change" and not is_clock
			else SceneReplicationConfig.REPLICATION_MODE_ALWAYS)
	sync.replication_config = config
	sync.replication_interval = every
	sync.delta_interval = every
	return sync


func _physics_process(_delta: float) -> bool:
	if clock == null:
		return false
	if ticks % Motion.UPDATE_TICKS == 0:
		for i in boxes.size():
			boxes[i].linear_velocity = Motion.velocity(i, ticks)
	ticks += 1
	return false


func _process(_delta: float) -> bool:
	if clock == null:
		if peer == null:
			_setup()
		return false
	clock.stamp = Time.get_unix_time_from_system()
	if transport == "enet":
		var host: ENetConnection = (peer as ENetMultiplayerPeer).host
		if host:
			enet_sent += int(host.pop_statistic(ENetConnection.HOST_TOTAL_SENT_DATA))
	var now := Time.get_ticks_msec()
	if now - last_report_msec >= 1000:
		last_report_msec = now
		var p := boxes[0].position if not boxes.is_empty() else Vector3.ZERO
		print("PEER_SERVER peers=%d ticks=%d enet_sent=%d box0=%.2f,%.2f,%.2f" % [api.get_peers().size(), ticks, enet_sent, p.x, p.y, p.z])
	return false
