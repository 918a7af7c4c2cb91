"""The reference FCN-32s and FCN-8s (Long, Shelhamer & Darrell, 2015) on a VGG-16 backbone.

This file is the one source of the instructor's solution: the notebook's cells are generated from
the code between the ``# BEGIN <cell>`` / ``# END <cell>`` markers below (see ``notebooks/build.py``);
nbgrader replaces each ``### BEGIN SOLUTION`` region with a stub in the student release. The
autograder compares submissions with these classes.
"""
# BEGIN imports
import torch
from torch import nn

from fcnkit.vgg import get_upsampling_weight
# END imports


# BEGIN vgg16_layers
def vgg16_layers(fcn: nn.Module) -> None:
    """Add VGG-16's conv layers and its classifier, recast as convolutions, to ``fcn``."""
    ### BEGIN SOLUTION
    # conv1_1 pads by 100 so that even a small input leaves a feature map after pool5 and fc6;
    # the crops in forward() undo that offset.
    fcn.conv1_1 = nn.Conv2d(3, 64, 3, padding=100)
    fcn.relu1_1 = nn.ReLU(inplace=True)
    fcn.conv1_2 = nn.Conv2d(64, 64, 3, padding=1)
    fcn.relu1_2 = nn.ReLU(inplace=True)
    fcn.pool1 = nn.MaxPool2d(2, stride=2, ceil_mode=True)  # 1/2

    fcn.conv2_1 = nn.Conv2d(64, 128, 3, padding=1)
    fcn.relu2_1 = nn.ReLU(inplace=True)
    fcn.conv2_2 = nn.Conv2d(128, 128, 3, padding=1)
    fcn.relu2_2 = nn.ReLU(inplace=True)
    fcn.pool2 = nn.MaxPool2d(2, stride=2, ceil_mode=True)  # 1/4

    fcn.conv3_1 = nn.Conv2d(128, 256, 3, padding=1)
    fcn.relu3_1 = nn.ReLU(inplace=True)
    fcn.conv3_2 = nn.Conv2d(256, 256, 3, padding=1)
    fcn.relu3_2 = nn.ReLU(inplace=True)
    fcn.conv3_3 = nn.Conv2d(256, 256, 3, padding=1)
    fcn.relu3_3 = nn.ReLU(inplace=True)
    fcn.pool3 = nn.MaxPool2d(2, stride=2, ceil_mode=True)  # 1/8

    fcn.conv4_1 = nn.Conv2d(256, 512, 3, padding=1)
    fcn.relu4_1 = nn.ReLU(inplace=True)
    fcn.conv4_2 = nn.Conv2d(512, 512, 3, padding=1)
    fcn.relu4_2 = nn.ReLU(inplace=True)
    fcn.conv4_3 = nn.Conv2d(512, 512, 3, padding=1)
    fcn.relu4_3 = nn.ReLU(inplace=True)
    fcn.pool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)  # 1/16

    fcn.conv5_1 = nn.Conv2d(512, 512, 3, padding=1)
    fcn.relu5_1 = nn.ReLU(inplace=True)
    fcn.conv5_2 = nn.Conv2d(512, 512, 3, padding=1)
    fcn.relu5_2 = nn.ReLU(inplace=True)
    fcn.conv5_3 = nn.Conv2d(512, 512, 3, padding=1)
    fcn.relu5_3 = nn.ReLU(inplace=True)
    fcn.pool5 = nn.MaxPool2d(2, stride=2, ceil_mode=True)  # 1/32

    # fc6 and fc7 are VGG's first two fully connected layers, as convolutions.
    fcn.fc6 = nn.Conv2d(512, 4096, 7)
    fcn.relu6 = nn.ReLU(inplace=True)
    fcn.drop6 = nn.Dropout2d()
    fcn.fc7 = nn.Conv2d(4096, 4096, 1)
    fcn.relu7 = nn.ReLU(inplace=True)
    fcn.drop7 = nn.Dropout2d()
    ### END SOLUTION


def vgg16_forward(fcn: nn.Module, x: torch.Tensor) -> dict:
    """Run the VGG-16 part; return ``{"pool3": ..., "pool4": ..., "fc7": ...}``: the outputs of pool3 and
    pool4, and fc7's after relu7 and drop7."""
    ### BEGIN SOLUTION
    h = fcn.relu1_1(fcn.conv1_1(x))
    h = fcn.pool1(fcn.relu1_2(fcn.conv1_2(h)))
    h = fcn.relu2_1(fcn.conv2_1(h))
    h = fcn.pool2(fcn.relu2_2(fcn.conv2_2(h)))
    h = fcn.relu3_1(fcn.conv3_1(h))
    h = fcn.relu3_2(fcn.conv3_2(h))
    pool3 = h = fcn.pool3(fcn.relu3_3(fcn.conv3_3(h)))
    h = fcn.relu4_1(fcn.conv4_1(h))
    h = fcn.relu4_2(fcn.conv4_2(h))
    pool4 = h = fcn.pool4(fcn.relu4_3(fcn.conv4_3(h)))
    h = fcn.relu5_1(fcn.conv5_1(h))
    h = fcn.relu5_2(fcn.conv5_2(h))
    h = fcn.pool5(fcn.relu5_3(fcn.conv5_3(h)))
    h = fcn.drop6(fcn.relu6(fcn.fc6(h)))
    fc7 = fcn.drop7(fcn.relu7(fcn.fc7(h)))
    return {"pool3": pool3, "pool4": pool4, "fc7": fc7}
    ### END SOLUTION


def init_weights(fcn: nn.Module) -> None:
    """He initialisation for convolutions, zeros for the score layers, bilinear upsampling.

    Zero-initialising every convolution (as the original course code did) leaves all ReLUs dead:
    a network trained from scratch would never move.
    """
    for name, m in fcn.named_modules():
        if isinstance(m, nn.ConvTranspose2d):
            m.weight.data.copy_(get_upsampling_weight(m.in_channels, m.out_channels, m.kernel_size[0]))
        elif isinstance(m, nn.Conv2d):
            if name.startswith("score"):
                nn.init.zeros_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
# END vgg16_layers


# BEGIN FCN32s
class FCN32s(nn.Module):
    """FCN-32s: VGG-16, a 1x1 class scorer, one 32x bilinear-initialised upsampling."""

    def __init__(self, n_class: int = 12):
        super().__init__()
        ### BEGIN SOLUTION
        vgg16_layers(self)
        self.score = nn.Conv2d(4096, n_class, 1)
        self.upscore = nn.ConvTranspose2d(n_class, n_class, 64, stride=32, bias=False)
        init_weights(self)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        h = self.score(vgg16_forward(self, x)["fc7"])
        h = self.upscore(h)
        # 19 = the offset of the output relative to the input, given the padding of 100.
        return h[:, :, 19:19 + x.size(2), 19:19 + x.size(3)].contiguous()
        ### END SOLUTION
# END FCN32s


# BEGIN FCN8s
class FCN8s(nn.Module):
    """FCN-8s: FCN-32s plus skips from pool4 and pool3, fused at 1/16 and 1/8 resolution."""

    def __init__(self, n_class: int = 12):
        super().__init__()
        ### BEGIN SOLUTION
        vgg16_layers(self)
        self.score = nn.Conv2d(4096, n_class, 1)
        self.score_pool4 = nn.Conv2d(512, n_class, 1)
        self.score_pool3 = nn.Conv2d(256, n_class, 1)
        self.upscore2 = nn.ConvTranspose2d(n_class, n_class, 4, stride=2, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(n_class, n_class, 4, stride=2, bias=False)
        self.upscore8 = nn.ConvTranspose2d(n_class, n_class, 16, stride=8, bias=False)
        init_weights(self)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        features = vgg16_forward(self, x)
        upscore2 = self.upscore2(self.score(features["fc7"]))  # 1/16
        score_pool4 = self.score_pool4(features["pool4"])
        score_pool4 = score_pool4[:, :, 5:5 + upscore2.size(2), 5:5 + upscore2.size(3)]
        upscore_pool4 = self.upscore_pool4(upscore2 + score_pool4)  # 1/8
        score_pool3 = self.score_pool3(features["pool3"])
        score_pool3 = score_pool3[:, :, 9:9 + upscore_pool4.size(2), 9:9 + upscore_pool4.size(3)]
        h = self.upscore8(upscore_pool4 + score_pool3)  # 1/1
        return h[:, :, 31:31 + x.size(2), 31:31 + x.size(3)].contiguous()
        ### END SOLUTION
# END FCN8s


MODELS = {"fcn32s": FCN32s, "fcn8s": FCN8s}
