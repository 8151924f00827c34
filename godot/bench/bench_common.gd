## Shared by both sides of the Godot benchmark: the scene layout and the per-tick timing.
##
## Main-thread time of a tick = from the SceneTree's first `_physics_process` of a frame (which
## runs before any node's physics and before the physics server steps) to that frame's `_process`,
## divided by the physics ticks the frame ran (a slow side runs several per frame to catch up). It
## covers the scripts, the nodes' physics processing and Godot's own physics step, in real time,
## the same way for both sides. The same span is also measured in the main thread's CPU time
## (`NexusInfo.thread_cpu_usec`), which leaves out the time the thread waited for a core: side (b)
## shares this machine's two cores with its 100 bot clients, side (a) has no clients at all.
extends RefCounted

const BOXES := 1000
const WARMUP_TICKS := 120
const MEASURED_TICKS := 600

var tick_started_usec := 0
var tick_started_cpu_usec := 0
var physics_ticks_this_frame := 0
var samples: PackedInt64Array = []
var cpu_samples: PackedInt64Array = []
var ticks := 0


## Box `i` of the 10 x 10 towers, 10 high, with gaps so the boxes tumble and stay busy.
static func box_position(i: int) -> Vector3:
	return Vector3((i % 10) * 1.5 - 7.0, 1.0 + (i / 100) * 1.6, ((i / 10) % 10) * 1.5 - 7.0)


## The boxes kicked at `tick` (as players would), identical on both sides.
static func kicked(tick: int) -> PackedInt64Array:
	var out: PackedInt64Array = []
	for k in 5:
		out.append((tick * 7 + k * 131) % BOXES)
	return out


func on_physics() -> void:
	ticks += 1
	physics_ticks_this_frame += 1
	if physics_ticks_this_frame == 1:
		tick_started_usec = Time.get_ticks_usec()
		tick_started_cpu_usec = NexusInfo.thread_cpu_usec()


func on_process() -> void:
	if physics_ticks_this_frame > 0 and ticks > WARMUP_TICKS:
		var per_tick := (Time.get_ticks_usec() - tick_started_usec) / physics_ticks_this_frame
		var cpu_per_tick := (NexusInfo.thread_cpu_usec() - tick_started_cpu_usec) / physics_ticks_this_frame
		for i in physics_ticks_this_frame:
			samples.append(per_tick)
			cpu_samples.append(cpu_per_tick)
	physics_ticks_this_frame = 0


func done() -> bool:
	return ticks > WARMUP_TICKS + MEASURED_TICKS


func summary() -> Dictionary:
	var wall := _distribution(samples)
	var cpu := _distribution(cpu_samples)
	return {
		"tick_ms_mean": wall[0],
		"tick_ms_p50": wall[1],
		"tick_ms_p99": wall[2],
		"cpu_ms_mean": cpu[0],
		"cpu_ms_p50": cpu[1],
		"cpu_ms_p99": cpu[2],
		"samples": samples.size(),
	}


## Mean, p50 and p99 of microsecond samples, in milliseconds.
static func _distribution(values: PackedInt64Array) -> Array[float]:
	if values.is_empty():
		return [0.0, 0.0, 0.0]
	var sorted := values.duplicate()
	sorted.sort()
	var total := 0
	for v in sorted:
		total += v
	return [
		total / float(sorted.size()) / 1000.0,
		sorted[sorted.size() / 2] / 1000.0,
		sorted[mini(sorted.size() - 1, int(sorted.size() * 0.99))] / 1000.0,
	]
