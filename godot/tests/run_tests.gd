## Runs every `res://tests/test_*.gd` (or those named after `--` on the command line: `-- test_x.gd`)
## and prints `N passed, N failed`; exits non-zero when anything failed.
extends SceneTree

const TEST_DIR := "res://tests"


func _initialize() -> void:
	_run.call_deferred()


func _run() -> void:
	var files := _test_files()
	var passed := 0
	var failed := 0
	for file in files:
		var script: GDScript = load(TEST_DIR.path_join(file))
		if script == null:
			printerr("FAIL %s: could not load the script" % file)
			failed += 1
			continue
		for method in script.get_script_method_list():
			var name: String = method["name"]
			if not name.begins_with("test_"):
				continue
			var suite: RefCounted = script.new()
			suite.tree = self
			var started := Time.get_ticks_msec()
			await suite.call(name)
			if suite.has_method("after_each"):
				await suite.call("after_each")
			var took := Time.get_ticks_msec() - started
			if suite.failures.is_empty():
				passed += 1
				print("ok   %s::%s (%d ms)" % [file, name, took])
			else:
				failed += 1
				printerr("FAIL %s::%s" % [file, name])
				for failure in suite.failures:
					printerr("       %s" % failure)
	# Let freed nodes and deferred calls settle so leak checks at exit see the real state.
	for i in 3:
		await process_frame
	print("%d passed, %d failed" % [passed, failed])
	quit(1 if failed > 0 or passed == 0 else 0)


func _test_files() -> PackedStringArray:
	var wanted := PackedStringArray()
	for arg in OS.get_cmdline_user_args():
		wanted.append(arg.get_file())
	var files := PackedStringArray()
	for file in DirAccess.get_files_at(TEST_DIR):
		if file.begins_with("test_") and file.ends_with(".gd") and (wanted.is_empty() or file in wanted):
			files.append(file)
	files.sort()
	return files
