## The client demo: joins the demo server (`scripts/serve`, ws://127.0.0.1:9090/ws, campaign "0")
## and shows its world. Arrow keys or WASD walk, Space jumps, Shift runs, E picks up the nearest
## item (or drops the held one). The camera follows the own avatar; the HUD shows the connection,
## the round trip, the objects and the weather. After `--` on the command line, `--url=WS_URL`,
## `--campaign=ID` and `--name=NAME` choose another server, campaign or player name.
extends Node3D

## Where the camera stays relative to the avatar (it keeps the orientation set in the scene, so
## "forward" is always away from the camera).
const CAMERA_OFFSET := Vector3(0.0, 5.0, 8.0)
## The demo's own input actions: [name, keys...]. Added at start when the project lacks them.
const ACTIONS := [
	["demo_forward", KEY_UP, KEY_W],
	["demo_back", KEY_DOWN, KEY_S],
	["demo_left", KEY_LEFT, KEY_A],
	["demo_right", KEY_RIGHT, KEY_D],
	["demo_jump", KEY_SPACE],
	["demo_run", KEY_SHIFT],
	["demo_interact", KEY_E],
]

## Connect when the scene starts (after applying the command line).
@export var connect_on_start := true

@onready var client: NexusClient = $Client
@onready var camera: Camera3D = $Client/Camera
@onready var status: Label = $Hud/Status

var _weather := "?"
var _last_event := ""


func _ready() -> void:
	_add_actions()
	for arg in OS.get_cmdline_user_args():
		if arg.begins_with("--url="):
			client.url = arg.trim_prefix("--url=")
		elif arg.begins_with("--campaign="):
			client.campaign_id = arg.trim_prefix("--campaign=")
		elif arg.begins_with("--name="):
			client.player_name = arg.trim_prefix("--name=")
	client.connected.connect(_on_connected)
	client.disconnected.connect(func(reason: String) -> void: _note("disconnected: %s" % reason))
	client.error.connect(func(code: String, message: String) -> void: _note("error %s: %s" % [code, message]))
	client.interaction_result.connect(_on_interaction_result)
	client.event_received.connect(_on_event)
	# The client does not connect by itself (autoconnect is off in the scene) so that the
	# command line can choose the server first.
	if connect_on_start and client.connect_to_server() != OK:
		_note("could not start connecting to %s" % client.url)


func _process(delta: float) -> void:
	var avatar := client.get_avatar_node()
	if avatar != null and avatar.visible:
		var wanted := avatar.position + CAMERA_OFFSET
		camera.position = camera.position.lerp(wanted, minf(1.0, delta * 8.0))
	var stats := client.get_stats()
	var ping := "-"
	if stats.get("rtt_ms", -1.0) >= 0.0:
		ping = "%d ms" % roundi(stats["rtt_ms"])
	status.text = "Nexus Physics client: %s | ping %s | objects %d | corrections %d | weather %s\n%s\nArrows/WASD walk, Space jump, Shift run, E pick up / drop" % [
		stats["state"], ping, stats["objects"], stats.get("corrections", 0), _weather, _last_event]


## Shows `text` on the HUD and prints it (headless runs have no HUD to look at).
func _note(text: String) -> void:
	_last_event = text
	print("client demo: ", text)


func _on_connected(client_id: int, avatar_id: int) -> void:
	_note("joined %s as client %d, avatar %d" % [client.url, client_id, avatar_id])
	# Ask for the environment now; its changes arrive as they happen.
	client.send_event({"type": "environment:state:v1:requested", "payload": {}})


func _on_interaction_result(result: Dictionary) -> void:
	if result["own"]:
		_note("%s: %s %s" % [result["kind"], result["code"], result["message"]])


func _on_event(event: Dictionary) -> void:
	var payload: Dictionary = event.get("payload", {})
	match event.get("type"):
		"environment:state:v1:stream", "environment:weather:v1:stream":
			var weather = payload.get("weather")
			if weather is Dictionary and str(weather.get("kind", _weather)) != _weather:
				_weather = str(weather.get("kind", _weather))
				print("client demo: weather ", _weather)


func _add_actions() -> void:
	for spec in ACTIONS:
		var action: String = spec[0]
		if InputMap.has_action(action):
			continue
		InputMap.add_action(action)
		for key in spec.slice(1):
			var event := InputEventKey.new()
			event.physical_keycode = key
			InputMap.action_add_event(action, event)
