from suite.command_line import dispatch

COMMANDS = {
    "list": ("models.catalog", "list the models available here and what others need"),
    "observe": ("models.observe", "run a stimulus set through models; write trial rows"),
    "accuracy": ("models.accuracy", "ImageNet top-1 accuracy on a labelled image set"),
    "where": ("models.where", "saliency and alignment with human importance maps"),
    "harmonize": ("models.harmonizer.training", "fine-tune a model with the neural harmonizer loss"),
    "import-keras": ("models.keras_import.cli", "convert the authors' Keras .h5 networks"),
    "export-partner": ("models.partner_export", "the ClickMe game's partner as ONNX for the page"),
}

if __name__ == "__main__":
    raise SystemExit(dispatch("python -m models", COMMANDS))
