from suite.command_line import dispatch

COMMANDS = {
    "report": ("analysis.report", "decision curves, fits, alignment scores and an HTML report"),
    "pipeline": ("analysis.pipeline",
                 "run stimuli → lists → observers → models → report from a config"),
    "power": ("analysis.power", "participants needed to tell two models' alignment apart"),
    "export": ("analysis.export", "trial tables as a shareable data set (BIDS or Psych-DS)"),
}

if __name__ == "__main__":
    raise SystemExit(dispatch("python -m analysis", COMMANDS))
