from suite.command_line import dispatch

COMMANDS = {
    "list": ("models.list_models", "list the models available here and what others need"),
    "catalog": ("models.catalog", "the paper's networks by class: names, input sizes, weights"),
    "observe": ("models.observe", "run a stimulus set through models; write trial rows"),
    "sweep": ("models.sweep",
              "many models over one stimulus set: decoded once, resumable, sharded"),
    "accuracy": ("models.accuracy", "ImageNet top-1 accuracy on a labelled image set"),
    "where": ("models.where", "saliency and alignment with human importance maps"),
    "harmonize": ("models.harmonizer.training",
                  "fine-tune a model with the neural harmonizer loss"),
    "import-keras": ("models.keras_import.cli", "convert the authors' Keras .h5 networks"),
    "export-partner": ("models.partner_export", "the ClickMe game's partner as ONNX for the page"),
}

if __name__ == "__main__":
    raise SystemExit(dispatch("python -m models", COMMANDS))
