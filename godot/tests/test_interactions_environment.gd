## InteractionSystem hooks, EnvironmentManager and ParticleField as children of a world server.
extends "res://tests/nexus_test.gd"

const RULES := """
extends InteractionSystem

var vetoed := 0

func _ready() -> void:
	register_interaction("wave", func(request: Dictionary) -> Dictionary:
		return {"success": true, "code": "ok", "data": {"emote": "wave", "client": request["client_id"]}})

func _veto_interaction(request: Dictionary) -> String:
	var properties: Dictionary = request.get("target_state", {}).get("properties", {})
	if request["kind"] == "pickup" and properties.get("locked", false):
		vetoed += 1
		return "locked by the script"
	return ""
"""

var root: Node3D


func after_each() -> void:
	if root != null:
		root.queue_free()
		root = null
		await frames(2)


func _world() -> PhysicsWorldServer:
	root = Node3D.new()
	var server := PhysicsWorldServer.new()
	server.offline = true
	server.name = "World"
	var rules := GDScript.new()
	rules.source_code = RULES
	check_eq(rules.reload(), OK, "the rules script compiles")
	var interactions := InteractionSystem.new()
	interactions.name = "Interactions"
	interactions.set_script(rules)
	server.add_child(interactions)
	var environment := EnvironmentManager.new()
	environment.name = "Environment"
	server.add_child(environment)
	var fountain := ParticleField.new()
	fountain.name = "Fountain"
	fountain.rate = 600.0
	server.add_child(fountain)
	for spec in [["Crate", {}], ["Locked", {"locked": true}]]:
		var body := NetworkedBody.new()
		body.name = spec[0]
		body.pickupable = true
		body.properties = spec[1]
		body.position = Vector3(1.0 if spec[0] == "Crate" else -1.0, 0.5, 1.0)
		server.add_child(body)
	root.add_child(server)
	tree.root.add_child(root)
	return server


func test_script_veto_and_custom_interaction() -> void:
	var server := _world()
	await frames(1)
	var results := []
	server.interaction_completed.connect(func(result: Dictionary) -> void: results.append(result))
	var avatar := server.add_local_player(1000000001, "tester")
	check(avatar >= 0, "a local player")
	server.step_ticks(20)
	var crate: int = server.get_node("Crate").object_id
	var locked: int = server.get_node("Locked").object_id
	server.request_local_interaction(1000000001, {"kind": "pickup", "target": locked, "request_id": 1})
	server.request_local_interaction(1000000001, {"kind": "pickup", "target": crate, "request_id": 2})
	server.request_local_interaction(1000000001, {"kind": {"custom": "wave"}, "request_id": 3})
	server.request_local_interaction(1000000001, {"kind": {"custom": "dance"}, "request_id": 4})
	server.step_ticks(1)
	await frames(1)
	check_eq(results.size(), 4, "every request has a result")
	var by_id := {}
	for result in results:
		by_id[result["request_id"]] = result
	if results.size() == 4:
		check_eq(by_id[1]["code"], "vetoed", "the script vetoes the locked crate")
		check_eq(by_id[1]["message"], "locked by the script", "with its reason")
		check_eq(by_id[2]["success"], true, "the other crate is picked up")
		check_eq(by_id[3]["success"], true, "the custom interaction succeeds")
		check_eq(by_id[3]["data"]["emote"], "wave", "with the handler's data")
		check_eq(by_id[4]["code"], "unknown_interaction", "an unregistered kind fails")
	check_eq(server.get_node("Interactions").vetoed, 1, "the veto hook ran once")
	check_eq(server.get_node("Interactions").get_registered_interactions(), PackedStringArray(["wave"]), "registered kinds")


func test_environment_changes_are_signalled() -> void:
	var server := _world()
	await frames(1)
	var environment: EnvironmentManager = server.get_node("Environment")
	var weather := []
	var patches := []
	environment.weather_changed.connect(func(w: Dictionary) -> void: weather.append(w))
	environment.terrain_edited.connect(func(p: Dictionary) -> void: patches.append(p))
	var before := environment.get_terrain_height(0.0, 0.0)
	check(not is_nan(before), "the world has a terrain")
	check(environment.set_weather("storm", 0.0), "set_weather")
	check(not environment.set_weather("snow", 1.0), "an unknown weather is refused")
	check(environment.edit_terrain(Vector2(0, 0), 5.0, 2.0), "edit_terrain")
	check(not environment.set_time_of_day(30.0), "hours beyond 24 are refused")
	server.step_ticks(1)
	await frames(1)
	check(weather.size() >= 1, "weather_changed fired")
	if weather.size() >= 1:
		check_eq(weather[0]["kind"], "storm", "the new weather")
	check_eq(patches.size(), 1, "terrain_edited fired once")
	check_near(environment.get_terrain_height(0.0, 0.0), before + 2.0, 0.05, "the terrain rose by 2 m at the centre")
	check_eq(environment.get_environment_state()["weather"]["kind"], "storm", "the environment state")


func test_particles_are_simulated_natively() -> void:
	var server := _world()
	await frames(1)
	var fountain: ParticleField = server.get_node("Fountain")
	check(fountain.emitter_id >= 0, "the emitter is registered")
	server.step_ticks(30)
	var live := fountain.get_live_particle_count()
	check(live > 100, "particles are alive after half a second: %d" % live)
	check(fountain.emit_burst(1000), "a burst")
	check(fountain.get_live_particle_count() >= live + 1000, "the burst adds particles")
