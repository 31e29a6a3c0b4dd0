"""MTCNN's refinement and output networks with facenet-pytorch's packaged weights (tools only)."""
