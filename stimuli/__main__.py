from stimuli.command_line import dispatch

COMMANDS = {
    "build": ("stimuli.build", "build a stimulus set from images and importance maps"),
    "demo": ("stimuli.demo", "build the built-in demo set (sample photographs, derived maps)"),
}

if __name__ == "__main__":
    raise SystemExit(dispatch("python -m stimuli", COMMANDS))
