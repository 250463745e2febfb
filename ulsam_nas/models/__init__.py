"""The network side: the ULSAM block, backbone layer tables, genomes, search spaces and model building.
"""
