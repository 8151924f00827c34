## NexusClient losing its connection: it joins a NexusGateway + PhysicsWorldServer (same process)
## through a TCP relay the test controls, which can hold back the client's bytes, cut both sides
## and refuse connections. The client must come back by itself and take its session back (same
## client id and avatar, the unacknowledged inputs applied once), join afresh when the server
## forgot it, and stay down when told to.
extends "res://tests/nexus_test.gd"


## Forwards TCP connections from a local port to the gateway, polled every frame.
class Relay extends Node:
	## Drop what the client sends instead of forwarding it (the server hears nothing).
	var hold_client_bytes := false
	## Accept new connections and close them at once (the server looks unreachable).
	var refuse := false
	## Connections accepted so far.
	var accepted := 0
	var _server := TCPServer.new()
	var _target_port := 0
	## [{down: client side, up: gateway side, to_up: bytes waiting for the gateway side}]
	var _pairs: Array[Dictionary] = []

	func start(target_port: int) -> int:
		_target_port = target_port
		if _server.listen(0, "127.0.0.1") != OK:
			return -1
		return _server.get_local_port()

	## Closes every relayed connection, both sides, without a WebSocket close (a network failure).
	func cut() -> void:
		for pair in _pairs:
			pair.down.disconnect_from_host()
			pair.up.disconnect_from_host()
		_pairs.clear()

	func _process(_delta: float) -> void:
		while _server.is_connection_available():
			var down := _server.take_connection()
			accepted += 1
			if refuse:
				down.disconnect_from_host()
				continue
			var up := StreamPeerTCP.new()
			up.connect_to_host("127.0.0.1", _target_port)
			_pairs.append({"down": down, "up": up, "to_up": PackedByteArray()})
		for pair in _pairs.duplicate():
			var down: StreamPeerTCP = pair.down
			var up: StreamPeerTCP = pair.up
			down.poll()
			up.poll()
			var up_status := up.get_status()
			if down.get_status() != StreamPeerTCP.STATUS_CONNECTED or up_status == StreamPeerTCP.STATUS_NONE or up_status == StreamPeerTCP.STATUS_ERROR:
				down.disconnect_from_host()
				up.disconnect_from_host()
				_pairs.erase(pair)
				continue
			var waiting := down.get_available_bytes()
			if waiting > 0:
				var got: Array = down.get_partial_data(waiting)
				if got[0] == OK and not hold_client_bytes:
					pair.to_up.append_array(got[1])
			if up_status != StreamPeerTCP.STATUS_CONNECTED:
				continue
			if not pair.to_up.is_empty():
				up.put_data(pair.to_up)
				pair.to_up = PackedByteArray()
			waiting = up.get_available_bytes()
			if waiting > 0:
				var back: Array = up.get_partial_data(waiting)
				if back[0] == OK:
					down.put_data(back[1])

	func _exit_tree() -> void:
		cut()
		_server.stop()


var root: Node3D
var gateway: NexusGateway
var server: PhysicsWorldServer
var relay: Relay
var client: NexusClient
## Every signal of the client, in order: [name, args...].
var seen: Array = []


func after_each() -> void:
	if root != null:
		root.queue_free()
		root = null
		await frames(2)


## A floor served on a free port behind a relay, and a client (not connected yet, driven by
## set_controls) that joins through the relay.
func _setup(resume_grace_seconds: float = 20.0) -> void:
	root = Node3D.new()
	gateway = NexusGateway.new()
	gateway.name = "Gateway"
	gateway.port = 0
	gateway.development_mode = true
	gateway.allow_command_line = false
	gateway.resume_grace_seconds = resume_grace_seconds
	root.add_child(gateway)
	server = PhysicsWorldServer.new()
	server.name = "World"
	server.campaign_id = "arena"
	server.gateway = gateway
	var floor_body := NetworkedBody.new()
	floor_body.name = "Floor"
	floor_body.body_type = 2
	floor_body.size = Vector3(80, 1, 80)
	floor_body.position = Vector3(0, -0.5, 0)
	server.add_child(floor_body)
	root.add_child(server)
	relay = Relay.new()
	relay.name = "Relay"
	root.add_child(relay)
	tree.root.add_child(root)
	await frames(1)
	var relay_port := relay.start(gateway.get_bound_port())
	check(relay_port > 0, "the relay listens")
	client = NexusClient.new()
	client.name = "Client"
	client.autoconnect = false
	client.input_enabled = false
	client.url = "ws://127.0.0.1:%d/ws" % relay_port
	client.campaign_id = "arena"
	client.player_name = "tester"
	client.connected.connect(func(client_id: int, avatar_id: int) -> void: seen.append(["connected", client_id, avatar_id]))
	client.disconnected.connect(func(reason: String) -> void: seen.append(["disconnected", reason]))
	client.reconnecting.connect(func(attempt: int, delay: float) -> void: seen.append(["reconnecting", attempt, delay]))
	client.reconnected.connect(func(resumed: bool) -> void: seen.append(["reconnected", resumed]))
	client.object_removed.connect(func(id: int, reason: String) -> void: seen.append(["object_removed", id, reason]))
	client.error.connect(func(code: String, message: String) -> void: seen.append(["error", code, message]))
	root.add_child(client)


## The recorded emissions of `signal_name`.
func _seen(signal_name: String) -> Array:
	return seen.filter(func(entry: Array) -> bool: return entry[0] == signal_name)


func _seconds(seconds: float) -> void:
	await tree.create_timer(seconds).timeout


## Connects, waits for the welcome and for the avatar to stand on the floor.
func _join_and_land() -> bool:
	check_eq(client.connect_to_server(), OK, "connect_to_server starts")
	var joined := await wait_until(func() -> bool: return not _seen("connected").is_empty(), 10.0)
	if not check(joined, "connected fires within 10 s (signals: %s)" % [seen]):
		return false
	var avatar_id := client.get_avatar_id()
	var landed := await wait_until(func() -> bool:
		var node := client.get_avatar_node()
		return node != null and node.visible and node.position.y < 1.2 and server.get_object_position(avatar_id).y < 1.2, 5.0)
	return check(landed, "the avatar lands on the floor")


func _horizontal(a: Vector3, b: Vector3) -> float:
	return Vector2(a.x - b.x, a.z - b.z).length()


func test_a_lost_connection_resumes_the_session_and_replays_inputs_once() -> void:
	await _setup()
	if not await _join_and_land():
		return
	var client_id := client.get_client_id()
	var avatar_id := client.get_avatar_id()
	var floor_id: int = server.get_node("Floor").object_id
	var floor_node := client.get_object_node(floor_id)
	var avatar := client.get_avatar_node()

	# Walk; then the client's bytes stop reaching the server: its inputs are sent, predicted and
	# never acknowledged while the server's avatar stops (no input, it idles).
	var start := avatar.position
	client.set_controls(Vector2(0, 1))
	var walking := await wait_until(func() -> bool: return avatar.position.z < start.z - 1.0, 5.0)
	check(walking, "the avatar walks (-Z)")
	var acked_before: int = client.get_stats()["last_acked_input_seq"]
	check(acked_before > 0, "inputs were acknowledged (%d)" % acked_before)
	relay.hold_client_bytes = true
	await _seconds(0.6)
	client.set_controls(Vector2.ZERO)
	var predicted := avatar.position
	var server_stalled := server.get_object_position(avatar_id)
	check(predicted.z < server_stalled.z - 1.0, "the server lags behind the unacknowledged inputs (client %s, server %s)" % [predicted, server_stalled])

	# The network fails, and for a while the server cannot be reached: attempts back off.
	relay.refuse = true
	relay.hold_client_bytes = false
	relay.cut()
	var retried := await wait_until(func() -> bool: return _seen("reconnecting").size() >= 3, 10.0)
	check(retried, "reconnecting fires for each attempt (signals: %s)" % [_seen("reconnecting")])
	check_eq(client.get_connection_state(), "reconnecting", "state while reconnecting")
	check(not client.is_connected_to_server(), "not connected while reconnecting")
	check_eq(client.interact("pickup", floor_id), -1, "no interaction while reconnecting")
	var attempts := _seen("reconnecting")
	for i in attempts.size():
		var entry: Array = attempts[i]
		check_eq(entry[1], i + 1, "attempts are numbered")
		var longest := minf(0.1 * pow(2.0, i), 5.0)
		check(entry[2] >= longest * 0.5 - 1e-6 and entry[2] <= longest + 1e-6, "attempt %d waits %f s, within [%f, %f]" % [i + 1, entry[2], longest * 0.5, longest])
	relay.refuse = false

	var back := await wait_until(func() -> bool: return not _seen("reconnected").is_empty(), 10.0)
	if not check(back, "reconnected fires (signals: %s)" % [seen]):
		return
	check_eq(_seen("reconnected")[0][1], true, "the session was resumed")
	check_eq(client.get_client_id(), client_id, "the same client id")
	check_eq(client.get_avatar_id(), avatar_id, "the same avatar")
	check(client.is_connected_to_server(), "connected again")
	check_eq(client.get_connection_state(), "connected", "state")
	check_eq(_seen("connected").size(), 1, "connected is not repeated for a resumed session")
	check(_seen("disconnected").is_empty(), "no disconnected (signals: %s)" % [seen])
	check(_seen("error").filter(func(e: Array) -> bool: return e[1] == "connection_lost").is_empty(), "no connection_lost error")
	check_eq(Array(server.get_clients()), [client_id], "the server has the one client, no second avatar")
	check_eq(client.get_object_node(floor_id), floor_node, "object nodes are kept through the reconnection")
	var stats := client.get_stats()
	check(stats["inputs_replayed"] > 0, "the unacknowledged inputs were sent again (%d)" % stats["inputs_replayed"])
	check_eq([stats["reconnects"], stats["resumes"]], [1, 1], "reconnects and resumes are counted")

	# The held-back inputs are applied by the server, once: its avatar ends where the client had
	# predicted it (not short of it, as without them, nor beyond it, as with some applied twice),
	# within two input steps (4 m/s at 60 Hz: 0.067 m; the shown node trails the prediction).
	# (Replayed inputs are applied one per tick, so this takes about as long as the hold.)
	await wait_until(func() -> bool: return _horizontal(server.get_object_position(avatar_id), predicted) < 0.5, 5.0)
	await _seconds(0.5)
	var server_after := server.get_object_position(avatar_id)
	await _seconds(0.2)
	check(server.get_object_position(avatar_id).distance_to(server_after) < 0.01, "the server's avatar is at rest")
	check(_horizontal(server_after, predicted) < 0.12, "the server applied the replayed inputs once: it stands at %s, the client had predicted %s (it had stopped at %s)" % [server_after, predicted, server_stalled])

	# Sequence numbers go on: new inputs are applied and acknowledged beyond the old ones.
	client.set_controls(Vector2(0, 1))
	var walks_on := await wait_until(func() -> bool: return server.get_object_position(avatar_id).z < server_after.z - 1.0, 5.0)
	client.set_controls(Vector2.ZERO)
	check(walks_on, "the resumed avatar walks on (server %s from %s)" % [server.get_object_position(avatar_id), server_after])
	check(client.get_stats()["last_acked_input_seq"] > acked_before, "acknowledgements continue past %d (now %d)" % [acked_before, client.get_stats()["last_acked_input_seq"]])
	var agreed := await wait_until(func() -> bool:
		var node := client.get_avatar_node()
		return node != null and _horizontal(node.position, server.get_object_position(avatar_id)) < 0.05, 5.0)
	check(agreed, "the prediction agrees with the server again (server at %s)" % server.get_object_position(avatar_id))


func test_without_auto_reconnect_a_lost_connection_is_reported() -> void:
	await _setup()
	client.auto_reconnect = false
	if not await _join_and_land():
		return
	relay.cut()
	var gone := await wait_until(func() -> bool: return not _seen("disconnected").is_empty(), 10.0)
	check(gone, "disconnected fires")
	check_eq(_seen("error").map(func(e: Array) -> String: return e[1]), ["connection_lost"], "error connection_lost")
	await _seconds(0.5)
	check(_seen("reconnecting").is_empty() and _seen("reconnected").is_empty(), "no reconnection (signals: %s)" % [seen])
	check_eq(relay.accepted, 1, "no new connection was attempted")
	check_eq(client.get_connection_state(), "disconnected", "state")
	check_eq(client.get_child_count(), 0, "the object nodes are freed")


func test_a_server_that_forgot_the_session_gets_a_new_one() -> void:
	await _setup(0.0) # the server keeps no lost session
	if not await _join_and_land():
		return
	var old_client := client.get_client_id()
	var old_avatar := client.get_avatar_id()
	relay.cut()
	var back := await wait_until(func() -> bool: return not _seen("reconnected").is_empty(), 10.0)
	if not check(back, "reconnected fires (signals: %s)" % [seen]):
		return
	check_eq(_seen("reconnected")[0][1], false, "not resumed")
	check(client.get_client_id() != old_client, "a new client id")
	check(client.get_avatar_id() != old_avatar and client.get_avatar_id() >= 0, "a new avatar")
	var connected := _seen("connected")
	check_eq(connected.size(), 2, "connected announces the new session")
	if connected.size() == 2:
		check_eq([connected[1][1], connected[1][2]], [client.get_client_id(), client.get_avatar_id()], "with the new ids")
	check(seen.find(connected[-1]) < seen.find(_seen("reconnected")[0]), "connected comes before reconnected")
	var removed := _seen("object_removed").filter(func(e: Array) -> bool: return e[1] == old_avatar)
	check(not removed.is_empty(), "the old avatar's node goes")
	var avatar := await wait_until(func() -> bool:
		var node := client.get_avatar_node()
		return node != null and node.visible and node.get_meta("own_avatar"), 5.0)
	check(avatar, "the new avatar has its node")
	check(client.get_object_node(old_avatar) == null or not client.get_object_node(old_avatar).get_meta("own_avatar"), "the old avatar is not shown as the own one")
	check_eq(Array(server.get_clients()), [client.get_client_id()], "the server has the new client only")
	check_eq([client.get_stats()["reconnects"], client.get_stats()["resumes"]], [1, 0], "counted as a reconnection, not a resume")


func test_disconnecting_while_reconnecting_stops_for_good() -> void:
	await _setup()
	if not await _join_and_land():
		return
	relay.refuse = true
	relay.cut()
	var retrying := await wait_until(func() -> bool: return not _seen("reconnecting").is_empty(), 10.0)
	check(retrying, "reconnecting fires")
	client.disconnect_from_server()
	var gone := await wait_until(func() -> bool: return not _seen("disconnected").is_empty(), 5.0)
	check(gone, "disconnected fires")
	if gone:
		check_eq(_seen("disconnected")[0][1], "disconnected by the client", "with the reason")
	relay.refuse = false
	var accepted := relay.accepted
	await _seconds(1.0)
	check_eq(relay.accepted, accepted, "no attempt after disconnect_from_server()")
	check(_seen("reconnected").is_empty(), "never reconnected")
	check_eq(client.get_connection_state(), "disconnected", "state")
	check_eq(client.get_child_count(), 0, "the object nodes are freed")


func test_reconnecting_gives_up_after_reconnect_max_attempts() -> void:
	await _setup()
	client.reconnect_max_attempts = 2
	if not await _join_and_land():
		return
	relay.refuse = true
	relay.cut()
	var gone := await wait_until(func() -> bool: return not _seen("disconnected").is_empty(), 10.0)
	check(gone, "disconnected fires once the attempts ran out")
	check_eq(_seen("reconnecting").map(func(e: Array) -> int: return e[1]), [1, 2], "two attempts")
	check_eq(_seen("error").map(func(e: Array) -> String: return e[1]), ["connection_lost"], "then error connection_lost")
	check(_seen("reconnected").is_empty(), "never reconnected")
	check_eq(client.get_connection_state(), "disconnected", "state")


func test_reconnect_properties_have_the_rust_clients_defaults() -> void:
	var fresh := NexusClient.new()
	check_eq(fresh.auto_reconnect, true, "auto_reconnect on")
	check_near(fresh.reconnect_delay, 0.1, 1e-6, "first wait 0.1 s, as nexus-bots")
	check_near(fresh.reconnect_max_delay, 5.0, 1e-6, "longest wait 5 s, as nexus-bots")
	check_eq(fresh.reconnect_max_attempts, 0, "no limit on attempts")
	fresh.free()
