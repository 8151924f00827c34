## The Godot side's clock (scripts/peer-bench): the server writes its wall time (Unix seconds)
## into `stamp` every frame and replicates it like a box, so a client can measure state age.
extends Node3D

var stamp := 0.0
