"""The engine room: study files -> trial plan -> Ray Tune/Train -> MLflow runs and records -> reports.
The only package that imports ray and mlflow."""
