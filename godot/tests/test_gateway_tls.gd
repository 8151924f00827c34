## NexusGateway with a TLS certificate serves wss:// on its port; Godot's own WebSocketPeer joins
## over it, trusting the self-signed certificate made here with Godot's Crypto.
extends "res://tests/nexus_test.gd"

const KEY_PATH := "user://nexus_test_tls.key"
const CERT_PATH := "user://nexus_test_tls.crt"

var root: Node3D


func after_each() -> void:
	if root != null:
		root.queue_free()
		root = null
		await frames(2)
	for path in [KEY_PATH, CERT_PATH]:
		DirAccess.remove_absolute(ProjectSettings.globalize_path(path))


func test_godots_websocket_peer_joins_over_wss() -> void:
	var crypto := Crypto.new()
	var key := crypto.generate_rsa(2048)
	var cert := crypto.generate_self_signed_certificate(key, "CN=localhost,O=Nexus Physics Test,C=XX")
	check_eq(key.save(KEY_PATH), OK, "the key is written")
	check_eq(cert.save(CERT_PATH), OK, "the certificate is written")

	root = Node3D.new()
	var gateway := NexusGateway.new()
	gateway.port = 0
	gateway.development_mode = true
	gateway.allow_command_line = false
	gateway.tls_certificate_file = ProjectSettings.globalize_path(CERT_PATH)
	gateway.tls_key_file = ProjectSettings.globalize_path(KEY_PATH)
	root.add_child(gateway)
	var server := PhysicsWorldServer.new()
	server.campaign_id = "secure"
	server.gateway = gateway
	var crate := NetworkedBody.new()
	crate.name = "Crate"
	server.add_child(crate)
	root.add_child(server)
	tree.root.add_child(root)
	await frames(2)
	check(gateway.is_running(), "the gateway runs with TLS")
	var url: String = gateway.get_url()
	check(url.begins_with("wss://"), "its URL is wss://: %s" % url)

	var peer := WebSocketPeer.new()
	var port: int = gateway.get_bound_port()
	check_eq(peer.connect_to_url("wss://localhost:%d/ws" % port, TLSOptions.client(cert)), OK, "connect_to_url")
	var opened := await wait_until(func() -> bool:
		peer.poll()
		return peer.get_ready_state() == WebSocketPeer.STATE_OPEN, 10.0)
	check(opened, "the wss:// connection opens")
	if not opened:
		return
	peer.send_text(JSON.stringify({"type": "session:join:v1:requested", "payload": {"token": "tls-tester"},
		"metadata": {"campaign_id": "secure", "entity_type": "player", "client_type": "godot"}}))
	var welcome := {}
	var deadline := Time.get_ticks_msec() + 5000
	while welcome.is_empty() and Time.get_ticks_msec() < deadline:
		peer.poll()
		while peer.get_available_packet_count() > 0:
			var event = JSON.parse_string(peer.get_packet().get_string_from_utf8())
			if event is Dictionary and event.get("type") == "session:welcome:v1:stream":
				welcome = event
		await tree.process_frame
	check(not welcome.is_empty(), "a welcome arrives over TLS")
	if not welcome.is_empty():
		var names := []
		for object in welcome["payload"]["world_state"]["objects"]:
			names.append(object.get("properties", {}).get("name", ""))
		check("Crate" in names, "with the world's objects: %s" % [names])
	peer.close()
	await frames(2)


func test_a_missing_certificate_file_is_a_clear_error() -> void:
	root = Node3D.new()
	var gateway := NexusGateway.new()
	gateway.port = 0
	gateway.development_mode = true
	gateway.allow_command_line = false
	gateway.autostart = false
	gateway.tls_certificate_file = "/nonexistent/nexus.crt"
	gateway.tls_key_file = "/nonexistent/nexus.key"
	root.add_child(gateway)
	tree.root.add_child(root)
	check(not gateway.start(), "start() refuses an unreadable certificate")
	check(not gateway.is_running(), "and does not run")
