"""Deploying the trained MLP the way Trax's documentation teaches it: as a Keras model
(``trax.AsKeras``, with a fixed batch size as Trax's README shows), then TensorFlow's tools.

One function per target, each writing its artifact into ``folder`` and returning its path;
``example`` is a batch of inputs (NumPy) that fixes the shapes. A toolchain is imported
inside the function that uses it, so a missing one fails only its own target.
"""

import tensorflow as tf
import trax


def to_keras(model, example):
    keras_layer = trax.AsKeras(model, batch_size=len(example))
    inputs = tf.keras.Input(shape=example.shape[1:])
    return tf.keras.Model(inputs=inputs, outputs=keras_layer(inputs))


# %% server


def export_server(model, example, folder):
    path = folder / "saved_model"
    to_keras(model, example).export(str(path))
    return path


# %% mobile


def export_mobile(model, example, folder):
    converter = tf.lite.TFLiteConverter.from_keras_model(to_keras(model, example))
    # What the converter's error asks for: the Keras layer's graph holds TensorFlow ops that
    # LiteRT's builtin operators lack.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                           tf.lite.OpsSet.SELECT_TF_OPS]
    path = folder / "model.tflite"
    path.write_bytes(converter.convert())
    return path


# %% web


def export_web(model, example, folder):
    import tf2onnx

    path = folder / "model.onnx"
    signature = [tf.TensorSpec(example.shape, tf.float32, name="pixels")]
    tf2onnx.convert.from_keras(to_keras(model, example), input_signature=signature,
                               output_path=str(path))
    return path
