"""The evidence a run produces: the replay of held-out videos (`replay`, `replay_data`,
`ablation`), its statistics (`stats`) and tables (`tables`), the HTML report and plots (`report`,
`plots`), and the results files the README is generated from (`results`, `listwise_results`).

Layer 3 (beside `pushgen.loop`, `serving`, `monitoring`): may import the core, data, features,
generator and ranker; nothing imports it but components, pipelines and the CLI.
"""
