## Shared by every side of the peer benchmark (scripts/peer-bench): where the N boxes are and how
## they move. Each box circles its home point at its own speed, with a deterministic wobble; its
## velocity is set anew every UPDATE_TICKS physics ticks (60 Hz) and held in between, on both
## sides (Godot's RigidBody3D: `linear_velocity`; our world: an impulse of mass x the change).
## Boxes are 6 m apart and circle within 2.6 m of home, so they never touch each other.
## Rotation stays constant on both sides (our GDScript API has no torque); both sides still
## replicate it (see scripts/peer-bench).
extends RefCounted

const SPACING := 6.0
const RADIUS := 2.0
const UPDATE_TICKS := 6
const TICK_RATE := 60.0
const HEIGHT := 0.5


static func columns(count: int) -> int:
	return maxi(1, ceili(sqrt(float(count))))


## Home of box `i` of `count`: a square grid centred on the origin, boxes resting at y = HEIGHT.
static func home(i: int, count: int) -> Vector3:
	var cols := columns(count)
	var half := (cols - 1) * SPACING * 0.5
	return Vector3((i % cols) * SPACING - half, HEIGHT, (i / cols) * SPACING - half)


## Where box `i` starts: on its circle at angle phase(i).
static func start(i: int, count: int) -> Vector3:
	var a := phase(i)
	return home(i, count) + Vector3(cos(a), 0.0, sin(a)) * RADIUS


static func phase(i: int) -> float:
	return fmod(i * 2.399963, TAU)


## Angular speed of box `i` (rad/s): one turn in 3 to 7 s.
static func omega(i: int) -> float:
	return TAU / (3.0 + float(i % 5))


## The velocity box `i` holds from physics tick `tick` (a multiple of UPDATE_TICKS) on: the
## tangent of its circle at the middle of the coming interval, plus a wobble.
static func velocity(i: int, tick: int) -> Vector3:
	var t := (tick + UPDATE_TICKS * 0.5) / TICK_RATE
	var a := phase(i) + omega(i) * t
	var speed := RADIUS * omega(i)
	var wobble := 0.6 * sin(1.7 * t + i * 0.37)
	return Vector3(-sin(a), 0.0, cos(a)) * speed + Vector3(cos(a), 0.0, sin(a)) * wobble
