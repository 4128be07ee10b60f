"""IREE compile and run: the target table, input-phase bytecode → vmfb, the runtime, and the
one engine (apply plan → compile → load → run) every stage uses."""
