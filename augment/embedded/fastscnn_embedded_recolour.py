# Fast-SCNN on the embedded scenes: real images only, each class recoloured on its own (ClassRecolour 0.3, half of
# the classes of a sample): the baseline to beat before training a GAN on a handful of labelled images.
_base_ = ['./fastscnn_embedded_real.py']
train_dataloader = dict(dataset=dict(pipeline={{_base_.recolour_train_pipeline}}))
