## Editor side of Nexus Physics. The nodes themselves come from the GDExtension (they work without
## this plugin); the plugin says plainly when that library did not load, and adds
## Project > Tools > "Nexus Physics: check scene", which lists every world of the edited scene with
## the gateway that serves it.
@tool
extends EditorPlugin

const CHECK_SCENE := "Nexus Physics: check scene"


func _enter_tree() -> void:
	if not ClassDB.class_exists("PhysicsWorldServer"):
		push_error("Nexus Physics: the extension library did not load. Expected for this platform: %s (see res://addons/nexus_physics/README.md)." % _library_hint())
		return
	add_tool_menu_item(CHECK_SCENE, _check_scene)


func _exit_tree() -> void:
	remove_tool_menu_item(CHECK_SCENE)


func _check_scene() -> void:
	var root := EditorInterface.get_edited_scene_root()
	if root == null:
		print("Nexus Physics: no scene is open.")
		return
	var worlds := root.find_children("*", "PhysicsWorldServer", true, false)
	if root.is_class("PhysicsWorldServer"):
		worlds.push_front(root)
	if worlds.is_empty():
		print("Nexus Physics: %s has no PhysicsWorldServer." % root.scene_file_path)
		return
	for world in worlds:
		var path := root.get_path_to(world)
		var problems: PackedStringArray = world.check_configuration()
		var gateway: Node = world.gateway
		if not problems.is_empty():
			for problem in problems:
				push_warning("Nexus Physics: world %s: %s" % [path, problem])
		elif gateway != null:
			print("Nexus Physics: world %s (campaign \"%s\") is served by %s." % [path, world.campaign_id, root.get_path_to(gateway)])
		else:
			print("Nexus Physics: world %s (campaign \"%s\") runs offline: no client can join." % [path, world.campaign_id])


func _library_hint() -> String:
	var config := ConfigFile.new()
	if config.load("res://addons/nexus_physics/nexus_physics.gdextension") != OK:
		return "(res://addons/nexus_physics/nexus_physics.gdextension is missing)"
	var platform := OS.get_name().to_lower()
	var arch := Engine.get_architecture_name()
	var paths := PackedStringArray()
	for key: String in config.get_section_keys("libraries"):
		if key.begins_with(platform + ".") and key.ends_with(arch):
			paths.append(config.get_value("libraries", key))
	if paths.is_empty():
		return "none: the addon carries no library for %s %s" % [OS.get_name(), arch]
	return ", ".join(paths)
