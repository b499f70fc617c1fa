"""The CIFAR ResNet-18 of He et al. 2016 (Section 4.2's 3x3 stem, no max-pooling), for inputs
of 3x32x32 in [0, 1] and 10 classes: what the GPU check attacks.

    --model benchmarks/resnet.py:resnet18 --weights resnet18.pt

Four stages of two basic blocks each (two 3x3 convolutions with batchnorm, and an identity
shortcut, or a 1x1 convolution where the stage halves the size and doubles the channels),
64, 128, 256 and 512 channels, then global average pooling and one linear layer: 11.2 M
parameters. ``width`` scales the channels (8 gives a model about 60 times cheaper, for a
smoke test on the CPU).
"""

from __future__ import annotations

from torch import Tensor, nn


class BasicBlock(nn.Module):
    """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))`` (He et al. 2016, Figure 2)."""

    def __init__(self, inputs: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return self.relu(out)


class ResNet18(nn.Module):
    """The CIFAR ResNet-18: logits of ``classes`` classes for ``(N, 3, 32, 32)`` inputs."""

    def __init__(self, classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        inputs = width
        for stage in range(4):
            channels = width * 2**stage
            for block in range(2):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(BasicBlock(inputs, channels, stride))
                inputs = channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inputs, classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.blocks(self.stem(x))
        return self.fc(self.pool(out).flatten(1))


def resnet18(classes: int = 10, width: int = 64) -> ResNet18:
    """A CIFAR ResNet-18 (the factory ``--model benchmarks/resnet.py:resnet18`` names)."""
    return ResNet18(classes, width)


def resnet18_small() -> ResNet18:
    """The CIFAR ResNet-18 with an eighth of the channels (8 to 64): the CPU smoke test's."""
    return ResNet18(10, 8)
