"""Gates, transforms and gating strategies (Gating-ML 2.0, FlowJo, cytokit YAML)."""
