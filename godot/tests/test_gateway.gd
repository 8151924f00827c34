## NexusGateway + PhysicsWorldServer served over a real socket, with Godot's own WebSocketPeer.
extends "res://tests/nexus_test.gd"

var root: Node3D


func after_each() -> void:
	if root != null:
		root.queue_free()
		root = null
		await frames(2)


## `configure`, if given, is called with the gateway before it starts (to set its properties).
func _serve(io_niceness := 10, configure := Callable()) -> PhysicsWorldServer:
	root = Node3D.new()
	var gateway := NexusGateway.new()
	gateway.name = "Gateway"
	gateway.io_niceness = io_niceness
	gateway.port = 0
	gateway.development_mode = true
	gateway.allow_command_line = false
	if configure.is_valid():
		configure.call(gateway)
	root.add_child(gateway)
	var server := PhysicsWorldServer.new()
	server.name = "World"
	server.campaign_id = "arena"
	server.gateway = gateway
	var floor_body := NetworkedBody.new()
	floor_body.name = "Floor"
	floor_body.body_type = 2
	floor_body.size = Vector3(60, 1, 60)
	floor_body.position = Vector3(0, -0.5, 0)
	server.add_child(floor_body)
	var crate := NetworkedBody.new()
	crate.name = "Crate"
	crate.position = Vector3(4, 0.5, 4)
	server.add_child(crate)
	root.add_child(server)
	tree.root.add_child(root)
	return server


func _connect(port: int) -> WebSocketPeer:
	var peer := WebSocketPeer.new()
	check_eq(peer.connect_to_url("ws://127.0.0.1:%d/ws" % port), OK, "connect_to_url")
	await wait_until(func() -> bool:
		peer.poll()
		return peer.get_ready_state() == WebSocketPeer.STATE_OPEN, 5.0)
	check_eq(peer.get_ready_state(), WebSocketPeer.STATE_OPEN, "the WebSocket opens")
	return peer


func _send(peer: WebSocketPeer, type: String, campaign: String, payload: Dictionary) -> void:
	peer.send_text(JSON.stringify({"type": type, "payload": payload,
		"metadata": {"campaign_id": campaign, "entity_type": "player", "client_type": "godot"}}))


## Waits for the next event matching `predicate`, polling the peer each frame.
func _next(peer: WebSocketPeer, predicate: Callable, timeout := 5.0) -> Dictionary:
	var deadline := Time.get_ticks_msec() + int(timeout * 1000)
	while Time.get_ticks_msec() < deadline:
		peer.poll()
		while peer.get_available_packet_count() > 0:
			var event = JSON.parse_string(peer.get_packet().get_string_from_utf8())
			if event is Dictionary and predicate.call(event):
				return event
		await tree.process_frame
	return {}


func _of_type(type: String) -> Callable:
	return func(event: Dictionary) -> bool: return event.get("type") == type


func _avatar_position(event: Dictionary, avatar: int) -> Variant:
	for object in event["payload"].get("objects", []):
		if int(object["id"]) == avatar:
			return Vector3(object["position"][0], object["position"][1], object["position"][2])
	return null


func test_a_godot_client_joins_and_sees_its_avatar_move() -> void:
	var server := _serve()
	await frames(1)
	var gateway: NexusGateway = root.get_node("Gateway")
	check(gateway.is_running(), "the gateway runs")
	var port := gateway.get_bound_port()
	check(port > 0, "a port was bound")
	var joined := []
	server.client_joined.connect(func(id: int, name: String, avatar: int) -> void: joined.append([id, name, avatar]))

	var peer: WebSocketPeer = await _connect(port)
	_send(peer, "session:join:v1:requested", "arena", {"token": "godot-tester"})
	var welcome := await _next(peer, _of_type("session:welcome:v1:stream"))
	check(not welcome.is_empty(), "a welcome arrives")
	if welcome.is_empty():
		return
	var payload: Dictionary = welcome["payload"]
	check(payload.has("client_id"), "the welcome names the client")
	check_eq(int(payload["tick_rate"]), 60, "the tick rate")
	var avatar := int(payload["avatar_id"])
	var objects: Array = payload["world_state"]["objects"]
	check(objects.size() >= 3, "the full state holds the floor, the crate and the avatar")
	var start = _avatar_position({"payload": payload["world_state"]}, avatar)
	check(start != null, "the avatar is in the full state")
	await frames(1)
	check_eq(joined.size(), 1, "client_joined fired")
	if joined.size() == 1:
		check_eq(joined[0][1], "godot-tester", "the development token is the name")
		check_eq(joined[0][2], avatar, "the avatar id")

	# Walk forward for a while, batching two inputs per message.
	var seq := 0
	for i in 30:
		var batch := []
		for k in 2:
			seq += 1
			batch.append({"seq": seq, "movement": [0.0, 1.0], "look": [0.0, 0.0, -1.0]})
		_send(peer, "physics:client_input:v1:requested", "arena", {"inputs": batch})
		await frames(1)
	var moved := await _next(peer, func(event: Dictionary) -> bool:
		if event.get("type") != "physics:world_state:v1:stream":
			return false
		var position = _avatar_position(event, avatar)
		return position != null and position.distance_to(start) > 1.0, 8.0)
	check(not moved.is_empty(), "a state message shows the avatar moved more than 1 m")
	peer.close()
	await wait_until(func() -> bool:
		peer.poll()
		return peer.get_ready_state() == WebSocketPeer.STATE_CLOSED, 3.0)


func _base64url(bytes: PackedByteArray) -> String:
	return Marshalls.raw_to_base64(bytes).replace("+", "-").replace("/", "_").replace("=", "")


## Mints a token as PROTOCOL.md describes it, with Godot's own HMAC: nx1.<claims>.<mac>.
func _mint(secret: String, name: String, campaign := "") -> String:
	var claims := {"sub": name, "name": name, "role": "player",
		"exp": int(Time.get_unix_time_from_system()) + 3600}
	if campaign != "":
		claims["cmp"] = campaign
	var signed := "nx1." + _base64url(JSON.stringify(claims).to_utf8_buffer())
	var hmac := HMACContext.new()
	hmac.start(HashingContext.HASH_SHA256, secret.to_utf8_buffer())
	hmac.update(signed.to_utf8_buffer())
	return signed + "." + _base64url(hmac.finish())


## Joins and returns the welcome, or for a refusal the close code and reason ("<code>: <message>";
## Godot's WebSocketPeer drops the error event that comes just before the close, the reason
## carries the same).
func _join_answer(port: int, campaign: String, token: String) -> Dictionary:
	var peer: WebSocketPeer = await _connect(port)
	_send(peer, "session:join:v1:requested", campaign, {"token": token})
	var answer := await _next(peer, _of_type("session:welcome:v1:stream"))
	if answer.is_empty():
		await wait_until(func() -> bool:
			peer.poll()
			return peer.get_ready_state() == WebSocketPeer.STATE_CLOSED, 3.0)
		answer = {"close_code": peer.get_close_code(), "close_reason": peer.get_close_reason()}
	peer.close()
	return answer


func test_webrtc_data_channels_are_offered_unless_turned_off() -> void:
	_serve()
	await frames(1)
	var gateway: NexusGateway = root.get_node("Gateway")
	check(gateway.webrtc_enabled, "WebRTC is on by default")
	check(gateway.get_bound_webrtc_port() > 0, "a UDP port was bound for WebRTC")
	var peer: WebSocketPeer = await _connect(gateway.get_bound_port())
	_send(peer, "session:join:v1:requested", "arena", {"token": "rtc"})
	var welcome := await _next(peer, _of_type("session:welcome:v1:stream"))
	check_eq(welcome.get("payload", {}).get("webrtc"), true, "the welcome offers WebRTC")
	# A bad offer is an error event; the session goes on.
	_send(peer, "session:webrtc_offer:v1:requested", "arena", {"sdp": "not an offer"})
	var error := await _next(peer, _of_type("system:error:v1:stream"))
	check_eq(error.get("payload", {}).get("code"), "invalid_payload", "a bad SDP is refused")
	peer.close()
	root.queue_free()
	root = null
	await frames(2)

	_serve(10, func(g: NexusGateway) -> void: g.webrtc_enabled = false)
	await frames(1)
	gateway = root.get_node("Gateway")
	check_eq(gateway.get_bound_webrtc_port(), -1, "no UDP port without WebRTC")
	peer = await _connect(gateway.get_bound_port())
	_send(peer, "session:join:v1:requested", "arena", {"token": "plain"})
	welcome = await _next(peer, _of_type("session:welcome:v1:stream"))
	check(not welcome.is_empty() and not welcome["payload"].has("webrtc"), "no webrtc in the welcome")
	_send(peer, "session:webrtc_offer:v1:requested", "arena", {"sdp": "v=0"})
	error = await _next(peer, _of_type("system:error:v1:stream"))
	check_eq(error.get("payload", {}).get("code"), "webrtc_unavailable", "offers are refused")
	peer.close()


func test_signed_tokens_bound_to_a_campaign_and_a_key_rotation() -> void:
	const NEW_SECRET := "the-new-secret-0123456789"
	const OLD_SECRET := "the-old-secret-0123456789"
	var old_file := OS.get_user_data_dir().path_join("test-previous-secret.txt")
	var file := FileAccess.open(old_file, FileAccess.WRITE)
	file.store_string(OLD_SECRET + "\n")
	file.close()
	_serve(10, func(gateway: NexusGateway) -> void:
		gateway.development_mode = false
		gateway.secret = NEW_SECRET
		gateway.previous_secret_file = old_file)
	await frames(1)
	var gateway: NexusGateway = root.get_node("Gateway")
	check(gateway.is_running(), "the gateway runs in signed mode with a previous secret")
	if not gateway.is_running():
		return
	var port := gateway.get_bound_port()

	var answer := await _join_answer(port, "arena", _mint(NEW_SECRET, "New"))
	check_eq(answer.get("type"), "session:welcome:v1:stream", "a token of the new secret joins")
	answer = await _join_answer(port, "arena", _mint(OLD_SECRET, "Old", "arena"))
	check_eq(answer.get("type"), "session:welcome:v1:stream",
		"a token of the previous secret, bound to this campaign, joins")
	answer = await _join_answer(port, "arena", _mint("a-third-secret-0123456789", "X"))
	check_eq(answer.get("close_code"), 1008, "a third secret is refused with 1008")
	check(str(answer.get("close_reason")).begins_with("invalid_token: the token's signature"),
		"the reason says why: %s" % answer.get("close_reason"))
	answer = await _join_answer(port, "arena", _mint(NEW_SECRET, "Y", "lobby"))
	check_eq(answer.get("close_code"), 1008, "a token bound to another campaign is refused")
	check(str(answer.get("close_reason")).contains("campaign \"lobby\", not \"arena\""),
		"the reason names both campaigns: %s" % answer.get("close_reason"))
	DirAccess.remove_absolute(old_file)


func test_bad_input_gets_an_error_event_and_the_connection_stays() -> void:
	_serve()
	await frames(1)
	var port: int = root.get_node("Gateway").get_bound_port()
	var peer: WebSocketPeer = await _connect(port)
	peer.send_text("{not json")
	var error := await _next(peer, _of_type("system:error:v1:stream"))
	check_eq(error.get("payload", {}).get("code"), "malformed_json", "malformed JSON is named")
	_send(peer, "physics:teleport:v1:requested", "arena", {})
	error = await _next(peer, _of_type("system:error:v1:stream"))
	check_eq(error.get("payload", {}).get("code"), "unknown_type", "an unknown type is named")
	_send(peer, "session:join:v1:requested", "no-such-campaign", {"token": "x"})
	error = await _next(peer, _of_type("system:error:v1:stream"))
	check_eq(error.get("payload", {}).get("code"), "unknown_campaign", "an unknown campaign is named")
	peer.poll()
	check_eq(peer.get_ready_state(), WebSocketPeer.STATE_OPEN, "the connection stays open")
	peer.close()


func test_freeing_the_gateway_frees_its_port() -> void:
	_serve()
	await frames(1)
	var gateway: NexusGateway = root.get_node("Gateway")
	var port := gateway.get_bound_port()
	var stopped := []
	gateway.stopped.connect(func() -> void: stopped.append(true))
	root.queue_free()
	root = null
	await frames(2)
	check_eq(stopped.size(), 1, "stopped fired")
	var listener := TCPServer.new()
	check_eq(listener.listen(port, "127.0.0.1"), OK, "the port is free again")
	listener.stop()


## The `nice` value of a /proc stat line (field 19; the command name may hold spaces).
func _niceness(stat_path: String) -> int:
	var file := FileAccess.open(stat_path, FileAccess.READ)
	if file == null:
		return -100
	var stat := file.get_line()
	var fields := stat.substr(stat.rfind(")") + 2).split(" ")
	return int(fields[16])


func test_the_network_threads_yield_to_the_tick() -> void:
	_serve(7)
	await frames(2)
	var ours := _niceness("/proc/self/stat")
	var io_threads: Array[int] = []
	for task in DirAccess.get_directories_at("/proc/self/task"):
		var comm := FileAccess.open("/proc/self/task/%s/comm" % task, FileAccess.READ)
		if comm != null and comm.get_line().strip_edges() == "nexus-gw-io":
			io_threads.append(_niceness("/proc/self/task/%s/stat" % task))
	check(io_threads.size() >= 1, "the gateway's network threads are found")
	for nice in io_threads:
		check_eq(nice, mini(ours + 7, 19), "a network thread is 7 steps nicer than the game")
	var gateway: NexusGateway = root.get_node("Gateway")
	check_eq(gateway.io_niceness, 7, "the property")
