from suite.command_line import dispatch

COMMANDS = {
    "lists": ("experiment.lists", "write counterbalanced trial lists from a stimulus set"),
    "run-lab": ("experiment.lab", "run one participant on a trial list with PsychoPy"),
    "timing": ("experiment.timing", "timing report of a lab session CSV"),
    "simulate": ("experiment.simulate", "answer a trial list with a simulated observer"),
    "build-online": ("experiment.online.build", "bundle the browser experiment as a static site"),
    "serve": ("experiment.online.serve", "serve an online study and store its trials"),
    "export": ("experiment.online.export", "export an online study's trials as a trial table"),
    "build-clickme": ("experiment.online.clickme_build",
                      "bundle the ClickMe game (human importance maps) as a site for serve"),
    "export-clicks": ("experiment.online.clickme_export",
                      "export a ClickMe game's rounds as the clicks CSV stimuli maps reads"),
}

if __name__ == "__main__":
    raise SystemExit(dispatch("python -m experiment", COMMANDS))
