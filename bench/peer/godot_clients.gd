## Side (a) of scripts/peer-bench, the clients: one headless Godot process hosting M peers of
## Godot's high-level multiplayer. Peer j lives in its own subtree /root/P<j> with its own
## SceneMultiplayer (SceneTree.set_multiplayer(api, path)) and its own WebSocketMultiplayerPeer
## or ENetMultiplayerPeer client, and holds the same S/Main/World/Spawner layout as the server, so
## the spawner builds a plain Node3D per box (no physics on the client) with its synchronizer.
##
## User args: --transport=ws|enet --port=P --clients=M --bodies=N [--interval=0.05]
##   [--mode=always|on_change] [--ramp=10 peers per frame] [--age-every=10]
## Every --age-every-th peer measures state age: on each clock update, its local wall time minus
## the server's stamp (same machine, same clock). Once a second prints
## `PEER_CLIENTS connected=C full=F ages=K` (full: peers holding every box and the clock, each
## synchronised at least once). On SIGTERM-free runs it never ends by itself; a file named by
## --report-file=PATH appearing makes it print `PEER_CLIENTS_RESULT {json}` (ages since the last
## report, join times) and clear its samples.
## With --clients=1 it is the join probe: it prints `PEER_JOIN connected_unix=T` when its
## connection opens and `PEER_JOIN full_unix=T enet_received=B` when it holds the full state
## (enet_received: ENet's own count of the payload bytes its host received, ENet only).
extends SceneTree

const Server := preload("res://peer/godot_server.gd")

var transport := "ws"
var port := 9200
var clients := 50
var bodies := 100
var interval := 0.05
var mode := "always"
var ramp := 10
var age_every := 10
var report_file := ""
var peers: Array[Dictionary] = []
var started := 0
var ages: PackedFloat64Array = []
var last_report_msec := 0
var full_count := 0
var connect_failures := 0


func _initialize() -> void:
	for arg in OS.get_cmdline_user_args():
		var kv := arg.trim_prefix("--").split("=", true, 1)
		if kv.size() != 2:
			continue
		match kv[0]:
			"transport": transport = kv[1]
			"port": port = int(kv[1])
			"clients": clients = int(kv[1])
			"bodies": bodies = int(kv[1])
			"interval": interval = float(kv[1])
			"mode": mode = kv[1]
			"ramp": ramp = int(kv[1])
			"age-every": age_every = int(kv[1])
			"report-file": report_file = kv[1]


func _start_peer(j: int) -> void:
	var top := Node.new()
	top.name = "P%d" % j
	root.add_child(top)
	var main := Node3D.new()
	main.name = "Main"
	top.add_child(main)
	var world := Node3D.new()
	world.name = "World"
	main.add_child(world)
	var state := {"index": j, "spawned": 0, "synced": {}, "full": false, "connected": false,
		"started_msec": Time.get_ticks_msec(), "world": world, "enet_received": 0}
	var spawner := MultiplayerSpawner.new()
	spawner.name = "Spawner"
	world.add_child(spawner)
	spawner.spawn_path = NodePath("..")
	spawner.spawn_limit = 0
	spawner.spawn_function = _spawn.bind(state)
	var api := SceneMultiplayer.new()
	api.server_relay = false
	set_multiplayer(api, top.get_path())
	var error := OK
	var peer: MultiplayerPeer
	if transport == "enet":
		var enet := ENetMultiplayerPeer.new()
		error = enet.create_client("127.0.0.1", port)
		peer = enet
	else:
		var ws := WebSocketMultiplayerPeer.new()
		ws.inbound_buffer_size = 1 << 20
		ws.max_queued_packets = 16384
		# The default 3 s is too short while hundreds of peers connect at once on 2 cores.
		ws.handshake_timeout = 30.0
		error = ws.create_client("ws://127.0.0.1:%d" % port)
		peer = ws
	if error != OK:
		connect_failures += 1
		printerr("PEER_CLIENTS peer %d cannot connect: %s" % [j, error_string(error)])
		return
	api.connected_to_server.connect(_on_connected.bind(state))
	api.multiplayer_peer = peer
	state["peer"] = peer
	peers.append(state)


func _on_connected(state: Dictionary) -> void:
	state["connected"] = true
	if clients == 1:
		print("PEER_JOIN connected_unix=%.6f" % Time.get_unix_time_from_system())


func _spawn(data: Variant, state: Dictionary) -> Node:
	var i := int(data)
	var node: Node3D = preload("res://peer/clock.gd").new() if i < 0 else Node3D.new()
	node.name = "Clock" if i < 0 else "B%d" % i
	var sync := Server.synchronizer(i < 0, interval, mode)
	node.add_child(sync)
	state["spawned"] += 1
	sync.synchronized.connect(_on_synchronized.bind(state, i, node))
	# ON_CHANGE properties arrive as delta synchronisations, with their own signal.
	sync.delta_synchronized.connect(_on_synchronized.bind(state, i, node))
	return node


func _on_synchronized(state: Dictionary, i: int, node: Node3D) -> void:
	if i < 0 and state["full"] and state["index"] % age_every == 0:
		ages.append(Time.get_unix_time_from_system() - node.stamp)
	if state["full"]:
		return
	state["synced"][i] = true
	if state["spawned"] >= bodies + 1 and state["synced"].size() >= bodies + 1:
		state["full"] = true
		full_count += 1
		if clients == 1:
			print("PEER_JOIN full_unix=%.6f enet_received=%d after_ms=%d" % [
				Time.get_unix_time_from_system(), _enet_received(state),
				Time.get_ticks_msec() - state["started_msec"]])


func _enet_received(state: Dictionary) -> int:
	if transport != "enet" or not state.has("peer"):
		return -1
	var host: ENetConnection = (state["peer"] as ENetMultiplayerPeer).host
	if host:
		state["enet_received"] += int(host.pop_statistic(ENetConnection.HOST_TOTAL_RECEIVED_DATA))
	return state["enet_received"]


func _process(_delta: float) -> bool:
	for k in ramp:
		if started < clients:
			_start_peer(started)
			started += 1
	if clients == 1 and peers.size() == 1 and not peers[0]["full"]:
		_enet_received(peers[0])
	var now := Time.get_ticks_msec()
	if now - last_report_msec >= 1000:
		last_report_msec = now
		var connected := 0
		for state in peers:
			if (state["peer"] as MultiplayerPeer).get_connection_status() == MultiplayerPeer.CONNECTION_CONNECTED:
				connected += 1
		print("PEER_CLIENTS connected=%d full=%d ages=%d failures=%d" % [connected, full_count, ages.size(), connect_failures])
		if report_file != "" and FileAccess.file_exists(report_file):
			DirAccess.remove_absolute(report_file)
			var sorted := ages.duplicate()
			sorted.sort()
			print("PEER_CLIENTS_RESULT ", JSON.stringify({
				"connected": connected, "full": full_count, "age_samples": sorted.size(),
				"age_ms_p50": _quantile(sorted, 0.5) * 1000.0,
				"age_ms_p99": _quantile(sorted, 0.99) * 1000.0,
			}))
			ages.clear()
	return false


static func _quantile(sorted: PackedFloat64Array, q: float) -> float:
	if sorted.is_empty():
		return -1.0
	return sorted[mini(sorted.size() - 1, int(q * sorted.size()))]
