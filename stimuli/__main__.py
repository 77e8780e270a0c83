from suite.command_line import dispatch

COMMANDS = {
    "build": ("stimuli.build", "build a stimulus set from images and importance maps"),
    "demo": ("stimuli.demo", "build the built-in demo set (sample photographs, derived maps)"),
    "maps": ("stimuli.maps",
             "importance maps from the game's clicks (with reliability), or NOT HUMAN ones"),
    "simulate-clicks": ("stimuli.simulate_clicks",
                        "a clicks CSV from SIMULATED players (not human), to try the map loop"),
    "import-clickme": ("stimuli.clickme_import",
                       "published ClickMe shards / Clicktionary .npz → images, maps, "
                       "build manifest"),
}

if __name__ == "__main__":
    raise SystemExit(dispatch("python -m stimuli", COMMANDS))
