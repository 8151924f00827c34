## NexusClient against a NexusGateway + PhysicsWorldServer served in the same process, over a real
## socket: joining, object nodes, walking, interactions, removals, disconnecting, failures.
extends "res://tests/nexus_test.gd"

const NEAR_CRATE := Vector3(1.5, 0.5, 0.0)
const FAR_CRATE := Vector3(15.0, 0.5, 15.0)

var root: Node3D
var server: PhysicsWorldServer
var client: NexusClient
## Every signal of the client, in order: [name, args...].
var seen: Array = []


func after_each() -> void:
	if root != null:
		root.queue_free()
		root = null
		await frames(2)


## A world with a floor and two pickupable crates (one within reach of the spawn point, one far),
## served on a free port, and a client (not connected yet) in the same tree.
func _setup(encoding: int = 1) -> void:
	root = Node3D.new()
	var gateway := NexusGateway.new()
	gateway.name = "Gateway"
	gateway.port = 0
	gateway.development_mode = true
	gateway.allow_command_line = false
	root.add_child(gateway)
	server = PhysicsWorldServer.new()
	server.name = "World"
	server.campaign_id = "arena"
	server.gateway = gateway
	var floor_body := NetworkedBody.new()
	floor_body.name = "Floor"
	floor_body.body_type = 2
	floor_body.size = Vector3(60, 1, 60)
	floor_body.position = Vector3(0, -0.5, 0)
	server.add_child(floor_body)
	for spec in [["NearCrate", NEAR_CRATE], ["FarCrate", FAR_CRATE]]:
		var crate := NetworkedBody.new()
		crate.name = spec[0]
		crate.position = spec[1]
		crate.pickupable = true
		server.add_child(crate)
	root.add_child(server)
	tree.root.add_child(root)
	await frames(1)
	client = NexusClient.new()
	client.name = "Client"
	client.autoconnect = false
	client.url = gateway.get_url()
	client.campaign_id = "arena"
	client.player_name = "tester"
	client.encoding = encoding
	_record(client)
	root.add_child(client)


func _record(target: NexusClient) -> void:
	target.connected.connect(func(client_id: int, avatar_id: int) -> void: seen.append(["connected", client_id, avatar_id]))
	target.disconnected.connect(func(reason: String) -> void: seen.append(["disconnected", reason]))
	target.object_spawned.connect(func(id: int, node: Node3D) -> void: seen.append(["object_spawned", id, node]))
	target.object_removed.connect(func(id: int, reason: String) -> void: seen.append(["object_removed", id, reason]))
	target.interaction_result.connect(func(result: Dictionary) -> void: seen.append(["interaction_result", result]))
	target.event_received.connect(func(event: Dictionary) -> void: seen.append(["event_received", event]))
	target.error.connect(func(code: String, message: String) -> void: seen.append(["error", code, message]))


## The recorded emissions of `signal_name`.
func _seen(signal_name: String) -> Array:
	return seen.filter(func(entry: Array) -> bool: return entry[0] == signal_name)


func _object_id(body_name: String) -> int:
	return server.get_node(body_name).object_id


## Connects and waits for the welcome; false (with a failure recorded) when it does not come.
func _join() -> bool:
	check_eq(client.connect_to_server(), OK, "connect_to_server starts")
	var joined := await wait_until(func() -> bool: return not _seen("connected").is_empty(), 10.0)
	return check(joined, "connected fires within 10 s (signals: %s)" % [seen])


## Waits until the node of object `id` exists and has been placed (it is hidden until then).
func _placed_node(id: int) -> Node3D:
	await wait_until(func() -> bool:
		var node := client.get_object_node(id)
		return node != null and node.visible, 5.0)
	return client.get_object_node(id)


func test_joins_and_shows_every_object_as_a_child() -> void:
	await _setup()
	var joined_on_server := []
	server.client_joined.connect(func(id: int, _name: String, avatar: int) -> void: joined_on_server.append([id, avatar]))
	check_eq(client.get_connection_state(), "disconnected", "state before connecting")
	if not await _join():
		return
	var connected: Array = _seen("connected")[0]
	check(connected[1] >= 0, "a client id")
	check_eq(connected[2], client.get_avatar_id(), "connected carries the avatar id")
	check(client.is_connected_to_server(), "is_connected_to_server")
	check_eq(client.get_connection_state(), "connected", "state")
	check_eq(joined_on_server, [[connected[1], connected[2]]], "the server saw the same client and avatar")
	check_eq(seen[0][0], "connected", "connected comes before the object spawns")

	var crate := _object_id("NearCrate")
	var node := await _placed_node(crate)
	check(node != null, "the crate has a visible node")
	if node == null:
		return
	check_eq(String(node.name), "Object_%d" % crate, "named by object id")
	check_eq(node.get_parent(), client, "a child of the client")
	check(node.position.distance_to(NEAR_CRATE) < 0.05, "the crate node stands at the crate (%s)" % node.position)
	check_eq(node.get_meta("object_id"), crate, "object_id metadata")
	check_eq(node.get_meta("kind"), "dynamic", "kind metadata")
	check_eq(node.get_meta("properties").get("pickupable"), true, "properties metadata")
	check(node is MeshInstance3D and (node as MeshInstance3D).mesh is BoxMesh, "a box mesh from the shape")
	var spawned_ids := _seen("object_spawned").map(func(entry: Array) -> int: return entry[1])
	for body in ["Floor", "NearCrate", "FarCrate"]:
		check(_object_id(body) in spawned_ids, "object_spawned for %s" % body)
	check(client.get_avatar_id() in spawned_ids, "object_spawned for the own avatar")
	var avatar := await _placed_node(client.get_avatar_id())
	check(avatar != null and avatar.get_meta("own_avatar"), "the own avatar is marked")
	check_eq(client.get_object_info(crate).get("kind"), "dynamic", "get_object_info")

	var stats_ready := await wait_until(func() -> bool: return client.get_stats()["rtt_ms"] >= 0.0, 5.0)
	check(stats_ready, "the round trip is measured")
	var stats := client.get_stats()
	check_eq(stats["encoding"], "binary", "the binary stream was negotiated")
	check(stats["states_applied"] > 0, "states were applied")
	check(stats["bytes_received"] > 0, "bytes received are counted")
	check_eq(stats["malformed_frames"], 0, "every frame was understood")


func test_properties_have_useful_defaults() -> void:
	var fresh := NexusClient.new()
	check_eq(fresh.url, "ws://127.0.0.1:9090/ws", "url: the port scripts/serve listens on")
	check_eq(fresh.campaign_id, "0", "campaign_id: the demo's campaign")
	check_eq(fresh.encoding, 1, "encoding: binary")
	check(fresh.autoconnect and fresh.prediction and fresh.input_enabled, "autoconnect, prediction, input on")
	check_eq([fresh.action_forward, fresh.action_back, fresh.action_left, fresh.action_right, fresh.action_jump],
		["ui_up", "ui_down", "ui_left", "ui_right", "ui_accept"], "actions every project has")
	check_eq(fresh.get_connection_state(), "disconnected", "not connected")
	check_eq(fresh.get_avatar_id(), -1, "no avatar")
	check(fresh.get_object_node(1) == null, "no object node")
	check_eq(fresh.interact("pickup", 1), -1, "no interaction while disconnected")
	fresh.free()


func test_object_scene_is_instanced_per_object() -> void:
	await _setup()
	var template := Node3D.new()
	var marker := Node3D.new()
	marker.name = "Marker"
	template.add_child(marker)
	marker.owner = template
	var scene := PackedScene.new()
	check_eq(scene.pack(template), OK, "the scene packs")
	template.free()
	client.object_scene = scene
	if not await _join():
		return
	var node := await _placed_node(_object_id("NearCrate"))
	if not check(node != null, "the crate has a node"):
		return
	check(not (node is MeshInstance3D), "an instance of the scene, not a mesh")
	check(node.has_node("Marker"), "with the scene's children")
	check_eq(node.get_meta("object_id"), _object_id("NearCrate"), "and the object's metadata")
	check(node.position.distance_to(NEAR_CRATE) < 0.05, "placed at the crate")


func test_walking_moves_the_avatar_and_the_server_agrees() -> void:
	await _setup()
	if not await _join():
		return
	var avatar_id := client.get_avatar_id()
	var avatar := await _placed_node(avatar_id)
	if not check(avatar != null, "the avatar node is placed"):
		return
	# Let it land first: it spawns 2 m up (standing on the floor, its centre is below 1.2 m).
	var landed := await wait_until(func() -> bool: return avatar.position.y < 1.2 and server.get_object_position(avatar_id).y < 1.2, 5.0)
	check(landed, "the avatar lands on the floor")
	var start := avatar.position
	var server_start := server.get_object_position(avatar_id)
	Input.action_press("ui_up")
	var walked := await wait_until(func() -> bool: return avatar.position.z < start.z - 1.5, 5.0)
	Input.action_release("ui_up")
	check(walked, "holding ui_up walks the avatar node forward, -Z (now %s, from %s)" % [avatar.position, start])
	check_near(avatar.position.x, start.x, 0.05, "straight ahead")
	# The server moved it too, and the prediction settles on the server's position.
	var agreed := await wait_until(func() -> bool:
		return avatar.position.distance_to(server.get_object_position(avatar_id)) < 0.02, 5.0)
	check(agreed, "the predicted avatar ends where the server has it (%s vs %s)" % [avatar.position, server.get_object_position(avatar_id)])
	check(server.get_object_position(avatar_id).z < server_start.z - 1.5, "the server's avatar walked as well")
	check(client.get_stats()["inputs_sent"] > 0, "inputs were sent")


func test_scripted_controls_drive_the_avatar_when_input_is_off() -> void:
	await _setup()
	client.input_enabled = false
	client.look_yaw = PI / 2.0 # looking down -X
	if not await _join():
		return
	var avatar := await _placed_node(client.get_avatar_id())
	if not check(avatar != null, "the avatar node is placed"):
		return
	var start := avatar.position
	Input.action_press("ui_up") # ignored: input is off
	client.set_controls(Vector2(0, 1))
	var walked := await wait_until(func() -> bool: return avatar.position.x < start.x - 1.0, 5.0)
	Input.action_release("ui_up")
	client.set_controls(Vector2.ZERO)
	check(walked, "set_controls walks along the look yaw, -X (now %s, from %s)" % [avatar.position, start])
	check_near(avatar.position.z, start.z, 0.1, "not along the actions' -Z")


func test_interactions_report_their_results() -> void:
	await _setup(0) # the JSON stream, for coverage of both encodings
	if not await _join():
		return
	check_eq(client.get_stats()["encoding"], "json", "the JSON stream was negotiated")
	var far_request := client.interact("pickup", _object_id("FarCrate"))
	var near_request := client.interact("pickup", _object_id("NearCrate"))
	check(far_request > 0 and near_request > far_request, "request ids (%d, %d)" % [far_request, near_request])
	var both := await wait_until(func() -> bool: return _seen("interaction_result").size() >= 2, 5.0)
	check(both, "two interaction results arrive")
	var by_request := {}
	for entry in _seen("interaction_result"):
		by_request[entry[1]["request_id"]] = entry[1]
	var far: Dictionary = by_request.get(far_request, {})
	check_eq(far.get("success"), false, "the far crate cannot be picked up")
	check_eq(far.get("code"), "out_of_reach", "with its reason code")
	check_eq(far.get("kind"), "pickup", "the kind")
	check_eq(far.get("target"), _object_id("FarCrate"), "the target")
	check_eq(far.get("own"), true, "it is this client's")
	var near: Dictionary = by_request.get(near_request, {})
	check_eq(near.get("success"), true, "the near crate is picked up")
	check_eq(near.get("code"), "ok", "code ok")
	check_eq(near.get("client_id"), client.get_client_id(), "the result names this client")
	var drop_request := client.interact_with_args("drop", -1, {"velocity": [0.0, 2.0, -3.0]})
	check(drop_request > near_request, "drop with a throw velocity is sent")
	await wait_until(func() -> bool: return _seen("interaction_result").size() >= 3, 5.0)
	check_eq(_seen("interaction_result")[-1][1].get("code"), "ok", "the crate is thrown")
	check_eq(client.interact("not a kind!", -1), -1, "a malformed kind is refused locally")
	check_eq(client.send_event({"type": "environment:state:v1:requested", "payload": {}}), OK, "send_event")
	var environment := await wait_until(func() -> bool:
		return _seen("event_received").any(func(entry: Array) -> bool: return entry[1]["type"] == "environment:state:v1:stream"), 5.0)
	check(environment, "the answer to a raw event arrives as event_received")
	check_eq(client.send_event({"type": "physics:world_state:v1:stream"}), ERR_INVALID_PARAMETER, "server events cannot be sent")


func test_a_removed_object_frees_its_node() -> void:
	await _setup()
	if not await _join():
		return
	var crate := _object_id("FarCrate")
	var node := await _placed_node(crate)
	if not check(node != null, "the crate node exists"):
		return
	check(server.remove_object(crate), "the server removes the crate")
	var removed := await wait_until(func() -> bool: return not _seen("object_removed").is_empty(), 5.0)
	check(removed, "object_removed fires")
	if removed:
		check_eq(_seen("object_removed")[0][1], crate, "for the crate")
	await frames(2)
	check(not is_instance_valid(node), "its node is freed")
	check(client.get_object_node(crate) == null, "get_object_node forgets it")
	check(not (crate in client.get_object_ids()), "get_object_ids forgets it")


func test_disconnecting_and_freeing_release_everything() -> void:
	await _setup()
	var left := []
	server.client_left.connect(func(id: int) -> void: left.append(id))
	if not await _join():
		return
	var node := await _placed_node(_object_id("NearCrate"))
	client.disconnect_from_server()
	check(not client.is_connected_to_server(), "not connected once disconnecting")
	var gone := await wait_until(func() -> bool: return not _seen("disconnected").is_empty(), 5.0)
	check(gone, "disconnected fires")
	if gone:
		check_eq(_seen("disconnected")[0][1], "disconnected by the client", "with the reason")
	await frames(2)
	check(not is_instance_valid(node), "object nodes are freed")
	check_eq(client.get_child_count(), 0, "no child is left")
	check_eq(client.get_connection_state(), "disconnected", "state")
	check(await wait_until(func() -> bool: return left.size() == 1, 5.0), "the server saw the client leave")

	# Reconnect, then free the node while connected.
	seen.clear()
	if not await _join():
		return
	client.queue_free()
	client = null
	await frames(1)
	check_eq(_seen("disconnected").size(), 1, "freeing the client emits disconnected at once")
	check(await wait_until(func() -> bool: return left.size() == 2, 5.0), "the server saw the freed client leave")


func test_failures_are_signalled_without_a_crash() -> void:
	await _setup()
	client.url = "not a url"
	check_eq(client.connect_to_server(), ERR_INVALID_PARAMETER, "a malformed URL is refused")
	await frames(1)
	check_eq(_seen("error").size(), 1, "error fires")
	if _seen("error").size() == 1:
		check_eq(_seen("error")[0][1], "invalid_url", "code invalid_url")

	# Nothing listens on port 1.
	seen.clear()
	client.url = "ws://127.0.0.1:1/ws"
	check_eq(client.connect_to_server(), OK, "the attempt starts")
	check_eq(client.connect_to_server(), ERR_ALREADY_IN_USE, "one attempt at a time")
	var failed := await wait_until(func() -> bool: return not _seen("disconnected").is_empty(), 10.0)
	check(failed, "disconnected fires")
	check_eq(_seen("error").map(func(entry: Array) -> String: return entry[1]), ["connect_failed"], "error connect_failed")
	check_eq(client.get_connection_state(), "disconnected", "back to disconnected")

	# A campaign the server does not have.
	seen.clear()
	client.url = root.get_node("Gateway").get_url()
	client.campaign_id = "no-such-campaign"
	check_eq(client.connect_to_server(), OK, "the attempt starts")
	failed = await wait_until(func() -> bool: return not _seen("disconnected").is_empty(), 10.0)
	check(failed, "disconnected fires")
	check_eq(_seen("error").map(func(entry: Array) -> String: return entry[1]), ["unknown_campaign"], "the server's code")
	check(_seen("connected").is_empty(), "never connected")

	# Outside the tree nothing starts.
	var loose := NexusClient.new()
	check_eq(loose.connect_to_server(), ERR_UNCONFIGURED, "outside the tree")
	loose.free()


func test_the_client_demo_scene_joins_a_server() -> void:
	await _setup()
	client.queue_free()
	client = null
	var demo: Node3D = load("res://scenes/client_demo.tscn").instantiate()
	var demo_client: NexusClient = demo.get_node("Client")
	demo_client.url = root.get_node("Gateway").get_url()
	demo_client.campaign_id = "arena"
	_record(demo_client)
	root.add_child(demo)
	var joined := await wait_until(func() -> bool: return not _seen("connected").is_empty(), 10.0)
	check(joined, "the demo's client joins")
	var status: Label = demo.get_node("Hud/Status")
	var shown := await wait_until(func() -> bool: return "connected" in status.text and "objects 4" in status.text, 5.0)
	check(shown, "the HUD shows the connection and the objects (%s)" % status.text)
	var camera: Camera3D = demo.get_node("Client/Camera")
	var avatar := demo_client.get_avatar_node()
	var follows := await wait_until(func() -> bool:
		return avatar != null and avatar.visible and camera.position.distance_to(avatar.position + demo.CAMERA_OFFSET) < 0.2, 5.0)
	check(follows, "the camera follows the avatar")
